"""`cairn dump` of each corpus store path vs `nix-store --dump` of the same path.

Cairn renders the NAR from its local store (one process per dump, as a user runs it; the seven
paths in one store, as imported one after the other, so later versions hold deltas against
earlier ones); Nix reads /nix/store. Output goes to /dev/null; best of ROUNDS wall times, the two
alternated. Target: the seven dumps together <= 2.5x. The first dump of a path also lays its tree
out and keeps its NAR skeleton (store/nar/skeleton.py): it is timed alone and printed beside.
(What starting `cairn` costs alone: cli_start.py.)
"""

from __future__ import annotations

import subprocess

from common import CAIRN, ROOT, best_alternated, corpus_trees, fresh_dir, ratio_line, timed

WORK = ROOT / "bench" / "out" / "store-dump"
ROUNDS = 7


def main() -> None:
    store = fresh_dir(WORK / "cairn-store")
    url = f"local://{store}"
    total_cairn = total_nix = total_first = 0.0
    for tree in corpus_trees():
        path = subprocess.run([CAIRN, "import", "--store", url, str(tree)], check=True,
                              capture_output=True, text=True).stdout.strip()
        subprocess.run(["nix-store", "--add", str(tree)], check=True, capture_output=True)
        first = timed([CAIRN, "dump", "--store", url, path])
        total_first += first
        best = best_alternated({"nix": ["nix-store", "--dump", path], "cairn": [CAIRN, "dump", "--store", url, path]},
                               ROUNDS)
        n, c = best["nix"], best["cairn"]
        total_nix += n
        total_cairn += c
        print(ratio_line(f"dump {tree.name}", c, n, "nix-store --dump", None) + f" (first dump: {first:.3f} s)")
    print(ratio_line("dump all seven paths", total_cairn, total_nix, "nix-store --dump", 2.5))
    print(ratio_line("first dumps (tree laid out, skeleton kept)", total_first, total_nix, "nix-store --dump", None))


if __name__ == "__main__":
    main()
