"""What a `cairn dump` pays before it renders: `cairn dump` of one small file below a store path vs
`nix-store --dump` of the same file. Its NAR is 1 KiB, so what is timed is start-up, imports,
opening the store and decompressing the one frame that holds the file; `python -c pass` is shown
as the floor any Python command pays.

Needs what bench/store_dump.py leaves: its store in bench/out/store-dump/cairn-store, and the same
paths added to /nix/store (run it first). Wall times of ROUNDS runs each, the three alternated,
best kept. No target (store_dump.py has the dump's).
"""

from __future__ import annotations

import subprocess
import sys

from common import CAIRN, ROOT, best_alternated, ratio_line

STORE = ROOT / "bench" / "out" / "store-dump" / "cairn-store"
INSIDE = "django/__init__.py"
ROUNDS = 21


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
    cairn = [CAIRN, "dump", "--store", url, path]
    nix = ["nix-store", "--dump", path]
    mine = subprocess.run(cairn, check=True, capture_output=True).stdout
    if mine != subprocess.run(nix, check=True, capture_output=True).stdout:
        sys.exit("the two dumps differ")
    best = best_alternated({"cairn": cairn, "nix": nix, "python": [sys.executable, "-c", "pass"]}, ROUNDS)
    print(f"dump of {path} ({len(mine)} bytes of NAR), best of {ROUNDS}")
    print(ratio_line("python -c pass (the floor)", best["python"], best["nix"], "nix-store --dump", None))
    print(ratio_line("cairn dump", best["cairn"], best["nix"], "nix-store --dump", None))


if __name__ == "__main__":
    main()
