"""`cairn dump` of each corpus store path vs `nix-store --dump` of the same path, and
`cairn --help` vs `nix-store --version` (what starting the command costs).

Cairn renders the NAR from its local store (one process per dump, as a user runs it);
Nix reads /nix/store. Output goes to /dev/null; best of 5 wall times (help: of 10, alternating).
Targets: the seven dumps together <= 2.5x; help <= 2x.
"""

from __future__ import annotations

import subprocess

from common import CAIRN, ROOT, best_of, corpus_trees, fresh_dir, ratio_line, timed

WORK = ROOT / "bench" / "out" / "store-dump"


def main() -> None:
    store = fresh_dir(WORK / "cairn-store")
    url = f"local://{store}"
    total_cairn = total_nix = 0.0
    for tree in corpus_trees():
        path = subprocess.run([CAIRN, "import", "--store", url, str(tree)], check=True,
                              capture_output=True, text=True).stdout.strip()
        subprocess.run(["nix-store", "--add", str(tree)], check=True, capture_output=True)
        n = best_of(5, lambda: timed(["nix-store", "--dump", path]))
        c = best_of(5, lambda: timed([CAIRN, "dump", "--store", url, path]))
        total_nix += n
        total_cairn += c
        print(ratio_line(f"dump {tree.name}", c, n, "nix-store --dump", None))
    print(ratio_line("dump all seven paths", total_cairn, total_nix, "nix-store --dump", 2.5))
    helps, versions = [], []
    for _ in range(10):
        helps.append(timed([CAIRN, "--help"]))
        versions.append(timed(["nix-store", "--version"]))
    print(ratio_line("cairn --help", min(helps), min(versions), "nix-store --version", 2.0))


if __name__ == "__main__":
    main()
