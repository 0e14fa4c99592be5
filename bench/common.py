"""Shared pieces of the benchmarks: the corpus, timing, a ratio line, and the servers and client
of the `nix copy --from` figures."""

from __future__ import annotations

import compileall
import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Iterator

ROOT = Path(__file__).resolve().parent.parent
SHARED = ROOT.parent / "shared"
CORPUS = Path(os.environ.get("CAIRN_CORPUS", ROOT / "bench" / "out" / "corpus"))
CAIRN = str(Path(sys.executable).parent / "cairn")
NIX_FLAGS = ["--extra-experimental-features", "nix-command"]


def compile_cairn() -> None:
    """Byte-compile Cairn as `pip install` does. The environment may set PYTHONDONTWRITEBYTECODE
    and the checkout is installed editable, so otherwise every timed `cairn` run would first
    compile its modules from source."""
    for package in ("castore", "store", "nar_bridge", "fuse"):
        compileall.compile_dir(ROOT / package, quiet=1)


compile_cairn()


def corpus_trees() -> list[Path]:
    """The seven package trees, built on first use by shared/corpus/make-corpus.sh."""
    trees = CORPUS / "trees"
    if not trees.is_dir() or len(list(trees.iterdir())) < 7:
        subprocess.run(["bash", str(SHARED / "corpus" / "make-corpus.sh"), str(CORPUS), sys.executable],
                       check=True)
    return sorted(p for p in trees.iterdir() if p.is_dir() and not p.name.endswith(".tmp"))


def timed(cmd: list[str], **kw) -> float:
    """Wall seconds of one run of a command (output discarded, failure raises)."""
    start = time.perf_counter()
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, **kw)
    return time.perf_counter() - start


def best_of(n: int, fn) -> float:
    return min(fn() for _ in range(n))


def best_alternated(commands: dict[str, list[str]], rounds: int) -> dict[str, float]:
    """The best wall time of each command over `rounds` rounds, one run of each per round: on a
    shared machine a burst of load then slows both sides of a ratio, not one."""
    best = dict.fromkeys(commands, float("inf"))
    for _ in range(rounds):
        for name, argv in commands.items():
            best[name] = min(best[name], timed(argv))
    return best


def fresh_dir(path: Path) -> Path:
    """An empty directory; the removal of the old one is synced first, so its deferred
    file-system work does not land on whichever command is timed next."""
    shutil.rmtree(path, ignore_errors=True)
    path.mkdir(parents=True)
    os.sync()
    return path


def disk_bytes(path: Path) -> int:
    """Bytes a directory really occupies: apparent size, but never more than allocated blocks
    (LMDB's map is sparse)."""
    total = 0
    for dirpath, _, files in os.walk(path):
        for f in files:
            st = os.lstat(os.path.join(dirpath, f))
            total += min(st.st_size, st.st_blocks * 512)
    return total


def ratio_line(what: str, cairn: float, peer: float, peer_name: str, target: float | None,
               unit: str = "s") -> str:
    """The figure's line; `target` None for a figure that has none yet."""
    r = cairn / peer if peer else float("inf")
    line = f"{what}: cairn {cairn:.3f} {unit} vs {peer_name} {peer:.3f} {unit} -> ratio {r:.2f}x"
    if target is None:
        return line
    return f"{line} (target <= {target}x: {'ok' if r <= target else 'MISSED'})"


def compare_with_nix_add(cairn_verb: list[str], work: Path, target: float = 1.5) -> None:
    """Time `cairn VERB --store fresh TREE` against `nix-store --add` into a fresh store,
    per corpus tree and in total (best of 3 each)."""
    total_cairn = total_nix = 0.0
    for tree in corpus_trees():
        def nix() -> float:
            root = fresh_dir(work / "nix-root")
            return timed(["nix-store", "--store", f"local?root={root}", "--add", str(tree)])

        def cairn() -> float:
            store = fresh_dir(work / "cairn-store")
            return timed([CAIRN, *cairn_verb, "--store", f"local://{store}", str(tree)])

        n, c = best_of(3, nix), best_of(3, cairn)
        total_nix += n
        total_cairn += c
        print(ratio_line(f"{' '.join(cairn_verb)} {tree.name}", c, n, "nix-store --add", target))
    print(ratio_line(f"{' '.join(cairn_verb)} all seven trees", total_cairn, total_nix, "nix-store --add", target))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_until_up(url: str, proc: subprocess.Popen) -> None:
    for _ in range(400):
        if proc.poll() is not None:
            raise RuntimeError(f"{' '.join(proc.args)} exited with status {proc.returncode}")
        try:
            urllib.request.urlopen(f"{url}/nix-cache-info", timeout=1)
            return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"{url} did not come up")


@contextlib.contextmanager
def running(argv: list[str], url: str, stop: int = signal.SIGTERM) -> Iterator[str]:
    """A binary cache server started by `argv`, once `url` answers; stopped by `stop`."""
    proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_until_up(url, proc)
        yield url
    finally:
        proc.send_signal(stop)
        proc.wait(30)


def add_to_nix(trees: list[Path]) -> list[str]:
    """`nix-store --add` of each tree: their store paths, in order."""
    done = subprocess.run(["nix-store", "--add", *map(str, trees)], check=True, capture_output=True, text=True)
    return done.stdout.split()


def file_cache(paths: list[str], cache: Path, secret_key: Path | None = None) -> Path:
    """A fresh uncompressed `file://` binary cache of `paths`, signed with `secret_key` if given."""
    url = f"file://{fresh_dir(cache)}?compression=none" + (f"&secret-key={secret_key}" if secret_key else "")
    subprocess.run(["nix", *NIX_FLAGS, "copy", "--to", url, *paths], check=True, stderr=subprocess.DEVNULL)
    return cache


def signing_key(directory: Path, name: str) -> tuple[Path, str]:
    """A new Nix secret key file (`nix key generate-secret`) and its public key, NAME:KEY."""
    secret = directory / f"{name}.sec"
    secret.write_bytes(subprocess.run(["nix", *NIX_FLAGS, "key", "generate-secret", "--key-name", name],
                                      check=True, capture_output=True).stdout)
    public = subprocess.run(["nix", *NIX_FLAGS, "key", "convert-secret-to-public"], input=secret.read_bytes(),
                            check=True, capture_output=True).stdout
    return secret, public.decode().strip()


@contextlib.contextmanager
def nginx(root: Path, work: Path) -> Iterator[str]:
    """nginx serving the binary cache in `root` (one worker, sendfile: its best static-file setup);
    its URL. Its configuration, pid and temporary files go in `work`."""
    port = free_port()
    conf = work / "nginx.conf"
    conf.write_text(f"""
        daemon off; worker_processes 1; user root; pid {work}/nginx.pid; error_log {work}/nginx-error.log;
        events {{ worker_connections 256; }}
        http {{
          access_log off; sendfile on; tcp_nopush on; keepalive_requests 100000;
          types {{ text/x-nix-narinfo narinfo; application/x-nix-nar nar; }}
          client_body_temp_path {work}; proxy_temp_path {work}; fastcgi_temp_path {work};
          uwsgi_temp_path {work}; scgi_temp_path {work};
          server {{ listen 127.0.0.1:{port}; root {root}; }}
        }}""")
    with running(["nginx", "-c", str(conf), "-p", str(work)], f"http://127.0.0.1:{port}", signal.SIGQUIT) as url:
        yield url


COPY_DEST = Path("/dev/shm/cairn-bench-copy") if Path("/dev/shm").is_dir() else ROOT / "bench" / "out" / "copy"


def copy_from(url: str, paths: list[str]) -> float:
    """Wall seconds of one `nix copy --from url` into a fresh local store, with a fresh Nix narinfo
    cache. The destination is on tmpfs when there is one: the client's disk writes are the same
    whatever the server, and would only blur the difference between servers."""
    dest = fresh_dir(COPY_DEST / "dest")
    env = dict(os.environ, XDG_CACHE_HOME=str(fresh_dir(COPY_DEST / "xdg-cache")))
    try:
        return timed(["nix", *NIX_FLAGS, "copy", "--no-check-sigs", "--from", url, "--to", f"local?root={dest}",
                      *paths], env=env)
    finally:
        shutil.rmtree(COPY_DEST, ignore_errors=True)
