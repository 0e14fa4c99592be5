"""What starting the command line costs: `cairn --help` vs `nix-store --version`.

Both only start, print and exit, so the figure is Python's start-up, Cairn's imports and the
parser's construction against a C++ program's start. Wall times of ROUNDS runs each, the two
commands alternated (the machine is shared: a burst of load hits both), best kept. Also printed,
with no target: `cairn dump --help` (one subcommand's parser built) and `python -c pass` (the
floor any Python command line starts from). Target: `cairn --help` <= 2x.
"""

from __future__ import annotations

import sys

from common import CAIRN, best_alternated, ratio_line

ROUNDS = 21


def main() -> None:
    best = best_alternated({"help": [CAIRN, "--help"], "nix": ["nix-store", "--version"],
                            "dump help": [CAIRN, "dump", "--help"], "python": [sys.executable, "-c", "pass"]},
                           ROUNDS)
    print(ratio_line("python -c pass (the floor)", best["python"], best["nix"], "nix-store --version", None))
    print(ratio_line("cairn dump --help", best["dump help"], best["nix"], "nix-store --version", None))
    print(ratio_line("cairn --help", best["help"], best["nix"], "nix-store --version", 2.0))


if __name__ == "__main__":
    main()
