"""What a `cairn dump` pays before it renders: this checkout's `cairn` vs main's, dumping one
small file below a store path. Its NAR is 1 KiB, so what is timed is start-up, imports, opening
the store and decompressing the one frame that holds the file (about 12 ms for this one).

Needs the store bench/store_dump.py leaves in bench/out/store-dump/cairn-store (run it first).
The peer is the `cairn` of another checkout's environment (default /work/main/.venv/bin/cairn,
override with CAIRN_PEER): each runs its own code. Wall times of ROUNDS runs each, the two
alternated with `python -c pass` (the floor), best kept; the ratio is this checkout's over the
peer's, so below 1 is faster. No target.

Both sides keep their bytecode under one PYCACHE prefix, written by an untimed first run: the
peer's checkout may not be writable and its __pycache__ may be stale, and a side that compiles
its modules on every run would be timed compiling.
"""

from __future__ import annotations

import os
import subprocess
import sys

from common import CAIRN, ROOT, best_alternated, ratio_line

STORE = ROOT / "bench" / "out" / "store-dump" / "cairn-store"
PEER = os.environ.get("CAIRN_PEER", "/work/main/.venv/bin/cairn")
INSIDE = "django/__init__.py"
ROUNDS = 21
PYCACHE = ROOT / "bench" / "out" / "dump-start" / "pycache"


def small_path(url: str) -> str:
    """A small file inside the store's Django-5.0 path."""
    listed = subprocess.run([CAIRN, "list", "--store", url], check=True, capture_output=True, text=True).stdout
    django = next(line.split("\t")[0] for line in listed.splitlines() if line.split("\t")[0].endswith("-Django-5.0"))
    return f"{django}/{INSIDE}"


def main() -> None:
    if not STORE.is_dir():
        sys.exit(f"no store at {STORE}: run store_dump.py first")
    url = f"local://{STORE}"
    path = small_path(url)
    dump = ["dump", "--store", url, path]
    os.environ["PYTHONPYCACHEPREFIX"] = str(PYCACHE)
    os.environ.pop("PYTHONDONTWRITEBYTECODE", None)
    mine = subprocess.run([CAIRN, *dump], check=True, capture_output=True).stdout
    peers = subprocess.run([PEER, *dump], check=True, capture_output=True).stdout
    if mine != peers:
        sys.exit("the two dumps differ")
    best = best_alternated({"mine": [CAIRN, *dump], "peer": [PEER, *dump], "python": [sys.executable, "-c", "pass"]},
                           ROUNDS)
    print(f"cairn dump {path} ({len(mine)} bytes of NAR), best of {ROUNDS}")
    print(ratio_line("python -c pass (the floor)", best["python"], best["peer"], f"peer {PEER}", None))
    print(ratio_line("cairn dump, this checkout", best["mine"], best["peer"], f"peer {PEER}", None))
    print(f"above the floor: {1000 * (best['mine'] - best['python']):.1f} ms vs "
          f"{1000 * (best['peer'] - best['python']):.1f} ms")


if __name__ == "__main__":
    main()
