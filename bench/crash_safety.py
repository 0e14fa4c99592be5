"""SIGKILL at random moments, spread over every writer: nothing acknowledged is lost or corrupt.

    CAIRN_CORPUS=... python bench/crash_safety.py [--cycles 100] [--seed N]

One embedded store lives through every cycle. Cycles take turns between four writers, each killed
with SIGKILL after a random delay within the length of one clean run of it:
- `cairn import` of fresh trees (acknowledged: the paths it printed);
- `cairn daemon`, written to by `cairn import --store grpc+unix://...` (the daemon is killed;
  acknowledged: the paths the client printed, each after the daemon answered its PathInfo Put);
- `cairn nar-bridge`, written to by `nix copy --to http://...` one path at a time (the bridge is
  killed; acknowledged: the paths whose `nix copy` exited 0);
- `cairn gc --grace 0` with every acknowledged path rooted (the killed writers leave garbage).
Runs go on until --cycles writers were killed (one that finished first counts as no cycle).
After each run `cairn verify --all` must be clean and every acknowledged path must be present.
Prints a table and a summary; exits 1 on the first loss.
"""

from __future__ import annotations

import argparse
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

from common import CAIRN, NIX_FLAGS, ROOT, fresh_dir, free_port, wait_until_up

WORK = ROOT / "bench" / "out" / "crash-safety"
MODES = ("import", "daemon", "bridge", "gc")


class Store:
    def __init__(self, directory: Path) -> None:
        self.url = f"local://{directory}"
        self.acknowledged: set[str] = set()

    def cairn(self, *args: str, **kw) -> subprocess.CompletedProcess:
        return subprocess.run([CAIRN, *args], capture_output=True, text=True, **kw)

    def check(self) -> str:
        """'' when verify is clean and every acknowledged path is present, else what is wrong."""
        verified = self.cairn("verify", "--all", "--store", self.url)
        if verified.returncode != 0 or "0 problems" not in verified.stderr:
            return f"verify: {verified.stdout[-2000:]}{verified.stderr[-2000:]}"
        if self.acknowledged:
            info = self.cairn("path-info", "--store", self.url, *sorted(self.acknowledged))
            if info.returncode != 0:
                return f"acknowledged paths lost: {info.stderr[-2000:]}"
        return ""


def trees(rng: random.Random, cycle: int, count: int) -> list[Path]:
    """Fresh trees sharing some files with each other and with earlier cycles (deduplicated), each
    with a few MB of its own so a kill can land in a pack write."""
    shared = [random.Random(n).randbytes(64 << 10) for n in range(8)]
    made = []
    for t in range(count):
        root = fresh_dir(WORK / "trees" / f"c{cycle}-t{t}")
        for n in range(rng.randrange(5, 60)):
            (root / f"f{n}").write_bytes(rng.choice(shared) if rng.random() < 0.3 else rng.randbytes(rng.randrange(0, 256 << 10)))
        (root / "big").write_bytes(rng.randbytes(rng.randrange(1 << 20, 6 << 20)))
        made.append(root)
    return made


def killed_after(process: subprocess.Popen, delay: float, victim: subprocess.Popen | None = None) -> str:
    """Kill `victim` (default: `process`) after `delay` seconds unless `process` finished; its stdout."""
    try:
        out, _ = process.communicate(timeout=delay)
        return out
    except subprocess.TimeoutExpired:
        (victim or process).send_signal(signal.SIGKILL)
        out, _ = process.communicate()
        return out


def run_import(store: Store, rng: random.Random, cycle: int, delay: float | None) -> tuple[list[str], bool]:
    proc = subprocess.Popen([CAIRN, "import", "--store", store.url, *map(str, trees(rng, cycle, 3))],
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, env=_unbuffered())
    out = killed_after(proc, delay) if delay is not None else proc.communicate()[0]
    return out.split(), proc.returncode == -signal.SIGKILL


def run_daemon(store: Store, rng: random.Random, cycle: int, delay: float | None) -> tuple[list[str], bool]:
    sock = WORK / "daemon.sock"
    sock.unlink(missing_ok=True)
    daemon = subprocess.Popen([CAIRN, "daemon", "--listen", f"grpc+unix://{sock}", "--store", store.url],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        while not sock.exists():
            time.sleep(0.02)
        client = subprocess.Popen([CAIRN, "import", "--store", f"grpc+unix://{sock}", *map(str, trees(rng, cycle, 3))],
                                  stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, env=_unbuffered())
        out = killed_after(client, delay, daemon) if delay is not None else client.communicate()[0]
        return out.split(), daemon.poll() == -signal.SIGKILL
    finally:
        if daemon.poll() is None:
            daemon.terminate()
        daemon.wait()


def run_bridge(store: Store, rng: random.Random, cycle: int, delay: float | None) -> tuple[list[str], bool]:
    nix_root = WORK / "nix"
    paths = subprocess.run(["nix-store", "--store", f"local?root={nix_root}", "--add", *map(str, trees(rng, cycle, 3))],
                           check=True, capture_output=True, text=True).stdout.split()
    port = free_port()
    bridge = subprocess.Popen([CAIRN, "nar-bridge", "--listen", f"127.0.0.1:{port}", "--store", store.url],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    acknowledged = []
    try:
        wait_until_up(f"http://127.0.0.1:{port}", bridge)
        deadline = time.monotonic() + delay if delay is not None else None
        for path in paths:
            copy = subprocess.Popen(["nix", *NIX_FLAGS, "copy", "--store", f"local?root={nix_root}", "--to",
                                     f"http://127.0.0.1:{port}?compression=xz", path],
                                    stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            if deadline is not None:
                killed_after(copy, max(deadline - time.monotonic(), 0), bridge)
            copy.wait()
            if copy.returncode == 0:
                acknowledged.append(path)
            if bridge.poll() is not None:
                break
        return acknowledged, bridge.poll() == -signal.SIGKILL
    finally:
        if bridge.poll() is None:
            bridge.terminate()
        bridge.wait()


def run_gc(store: Store, rng: random.Random, cycle: int, delay: float | None) -> tuple[list[str], bool]:
    if store.acknowledged:
        rooted = store.cairn("root", "add", "acknowledged", *sorted(store.acknowledged), "--store", store.url)
        assert rooted.returncode == 0, rooted.stderr
    proc = subprocess.Popen([CAIRN, "gc", "--grace", "0", "--store", store.url],
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    if delay is not None:
        killed_after(proc, delay)
    else:
        proc.communicate()
    return [], proc.returncode == -signal.SIGKILL


def _unbuffered() -> dict[str, str]:
    return dict(os.environ, PYTHONUNBUFFERED="1")  # a path is printed the moment it is acknowledged


RUNNERS = {"import": run_import, "daemon": run_daemon, "bridge": run_bridge, "gc": run_gc}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cycles", type=int, default=100, help="how many writers to kill")
    parser.add_argument("--seed", type=int, default=random.randrange(1 << 32))
    args = parser.parse_args()
    rng = random.Random(args.seed)
    store = Store(fresh_dir(WORK / "store"))
    fresh_dir(WORK / "nix")
    clean: dict[str, float] = {}
    for mode in MODES:  # one clean run of each: how long a kill may wait
        started = time.monotonic()
        acknowledged, _ = RUNNERS[mode](store, rng, -1 - MODES.index(mode), None)
        clean[mode] = time.monotonic() - started
        store.acknowledged.update(acknowledged)
    print(f"seed {args.seed}; clean runs: " + ", ".join(f"{m} {s:.1f} s" for m, s in clean.items()), flush=True)
    killed = {mode: 0 for mode in MODES}
    cycle = 0
    while sum(killed.values()) < args.cycles:  # a writer that finished before its kill is no cycle
        mode = MODES[cycle % len(MODES)]
        acknowledged, was_killed = RUNNERS[mode](store, rng, cycle, rng.uniform(0.05, clean[mode]))
        store.acknowledged.update(acknowledged)
        killed[mode] += was_killed
        problem = store.check()
        print(f"cycle {cycle + 1:3} {mode:6} {'killed' if was_killed else 'finished':8} "
              f"+{len(acknowledged)} acknowledged, {len(store.acknowledged)} in all: {problem or 'verify clean'}",
              flush=True)
        if problem:
            print(f"FAILED at cycle {cycle + 1} (seed {args.seed})")
            return 1
        cycle += 1
    print(f"{sum(killed.values())} SIGKILLs in {cycle} runs ({', '.join(f'{m} {k} killed' for m, k in killed.items())}): "
          f"0 acknowledged paths lost of {len(store.acknowledged)}, 0 corrupt, `cairn verify --all` clean after each")
    return 0


if __name__ == "__main__":
    sys.exit(main())
