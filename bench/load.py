"""Load: 32 `nix copy --to` uploaders of overlapping closures and 32 `nix copy --from` downloaders,
all at once, against one nar-bridge on the embedded store.

    python bench/load.py [--uploaders 32] [--downloaders 32] [--seed N]

The paths live in a throwaway Nix store: leaves added with `nix-store --add`, and text paths made
with `builtins.toFile` that reference several leaves each (closures that overlap). Half the tops are
uploaded first, so downloaders have something to fetch while the other half is being uploaded by
every uploader at once (each a random sample: the same paths race). Then: every process exited 0,
`cairn verify --all` is clean, and every downloaded path hashes (`nix hash path`) as the original.
"""

from __future__ import annotations

import argparse
import random
import subprocess
import sys
import time
from pathlib import Path

from common import CAIRN, NIX_FLAGS, ROOT, fresh_dir, free_port, running

WORK = ROOT / "bench" / "out" / "load"
LEAVES = 48
TOPS = 24


def make_paths(rng: random.Random, nix_root: Path) -> list[str]:
    """The tops, each with 3-8 leaves in its closure."""
    store = f"local?root={nix_root}"
    leaves = []
    for n in range(LEAVES):
        tree = fresh_dir(WORK / "trees" / f"leaf-{n}")
        for f in range(rng.randrange(1, 20)):
            (tree / f"f{f}").write_bytes(rng.randbytes(rng.randrange(0, 32 << 10)))
        leaves.append(tree)
    leaf_paths = subprocess.run(["nix-store", "--store", store, "--add", *map(str, leaves)],
                                check=True, capture_output=True, text=True).stdout.split()
    tops = []
    for n in range(TOPS):
        refs = " ".join(f'${{builtins.storePath "{p}"}}' for p in rng.sample(leaf_paths, rng.randrange(3, 9)))
        out = subprocess.run(["nix-instantiate", "--store", store, "--read-write-mode", "--eval", "-E",
                              f'builtins.toFile "top-{n}" "{refs}"'], check=True, capture_output=True, text=True)
        tops.append(out.stdout.strip().strip('"'))
    return tops


def nix_copy(args: list[str], log: Path) -> subprocess.Popen:
    return subprocess.Popen(["nix", *NIX_FLAGS, "copy", *args], stdout=subprocess.DEVNULL, stderr=log.open("w"))


def hashes(store: str, paths: list[str]) -> dict[str, str]:
    out = subprocess.run(["nix", *NIX_FLAGS, "path-info", "--store", store, "--json", "--recursive", *paths],
                         check=True, capture_output=True, text=True).stdout
    import json
    return {p["path"]: p["narHash"] for p in json.loads(out)}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--uploaders", type=int, default=32)
    parser.add_argument("--downloaders", type=int, default=32)
    parser.add_argument("--seed", type=int, default=random.randrange(1 << 32))
    args = parser.parse_args()
    rng = random.Random(args.seed)
    nix_root = fresh_dir(WORK / "nix")
    source = f"local?root={nix_root}"
    tops = make_paths(rng, nix_root)
    first, rest = tops[:TOPS // 2], tops[TOPS // 2:]
    store = fresh_dir(WORK / "store")
    logs = fresh_dir(WORK / "logs")
    port = free_port()
    bridge = [CAIRN, "nar-bridge", "--listen", f"127.0.0.1:{port}", "--store", f"local://{store}"]
    with running(bridge, f"http://127.0.0.1:{port}") as url:
        subprocess.run(["nix", *NIX_FLAGS, "copy", "--store", source, "--to", f"{url}?compression=xz", *first],
                       check=True, capture_output=True)
        started = time.monotonic()
        procs = [("upload", nix_copy(["--store", source, "--to", f"{url}?compression=xz", *rng.sample(rest, 4)],
                                     logs / f"up-{n}.log")) for n in range(args.uploaders)]
        dests = []
        for n in range(args.downloaders):
            dest = fresh_dir(WORK / "dest" / f"d{n}")
            wanted = rng.sample(first, 4)
            dests.append((f"local?root={dest}", wanted))
            procs.append(("download", nix_copy(["--no-check-sigs", "--from", url, "--to", f"local?root={dest}",
                                                *wanted], logs / f"down-{n}.log")))
        failed = [(kind, p.args) for kind, p in procs if p.wait() != 0]
        seconds = time.monotonic() - started
    verified = subprocess.run([CAIRN, "verify", "--all", "--store", f"local://{store}"], capture_output=True, text=True)
    original = hashes(source, tops)
    wrong = [(dest, path) for dest, wanted in dests for path, h in hashes(dest, wanted).items() if original[path] != h]
    print(f"{args.uploaders} uploaders and {args.downloaders} downloaders at once: {seconds:.1f} s, "
          f"{len(failed)} failed, {len(wrong)} paths differing from the original; "
          f"verify: {verified.stderr.strip().splitlines()[-1] if verified.stderr.strip() else verified.returncode} "
          f"(seed {args.seed})")
    for kind, argv in failed[:5]:
        print(f"  failed {kind}: {' '.join(argv)}")
    ok = not failed and not wrong and verified.returncode == 0 and "0 problems" in verified.stderr
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
