"""Import speed: `cairn castore import` of each corpus tree vs `nix-store --add` (C++ Nix).

Each side imports into a fresh store per run; best of 3 wall times. Target: ratio <= 1.5x.
"""

from __future__ import annotations

from pathlib import Path

from common import CAIRN, ROOT, best_of, corpus_trees, fresh_dir, ratio_line, timed

WORK = ROOT / "bench" / "out" / "import"


def main() -> None:
    total_cairn = total_nix = 0.0
    for tree in corpus_trees():
        def nix() -> float:
            root = fresh_dir(WORK / "nix-root")
            return timed(["nix-store", "--store", f"local?root={root}", "--add", str(tree)])

        def cairn() -> float:
            store = fresh_dir(WORK / "cairn-store")
            return timed([CAIRN, "castore", "import", "--store", f"local://{store}", str(tree)])

        n, c = best_of(3, nix), best_of(3, cairn)
        total_nix += n
        total_cairn += c
        print(ratio_line(f"import {tree.name}", c, n, "nix-store --add", 1.5))
    print(ratio_line("import all seven trees", total_cairn, total_nix, "nix-store --add", 1.5))


if __name__ == "__main__":
    main()
