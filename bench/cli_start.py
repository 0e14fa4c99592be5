"""What starting the command line costs: `cairn --help` vs `nix-store --version`.

Both only start, print and exit, so the figure is Python's start-up, Cairn's imports and the
parser's construction against a C++ program's start. Wall times of ROUNDS runs each, the two
commands alternated (the machine is shared: a burst of load hits both), best kept. Also printed,
with no target: `cairn dump --help` (one subcommand's parser built) and `python -c pass` (the
floor any Python command line starts from). Target: `cairn --help` <= 2x.
"""

from __future__ import annotations

import sys

from common import CAIRN, ratio_line, timed

ROUNDS = 21


def best_alternated(commands: dict[str, list[str]], rounds: int = ROUNDS) -> dict[str, float]:
    """The best wall time of each command over `rounds` rounds, one run of each per round."""
    best = dict.fromkeys(commands, float("inf"))
    for _ in range(rounds):
        for name, argv in commands.items():
            best[name] = min(best[name], timed(argv))
    return best


def main() -> None:
    best = best_alternated({"help": [CAIRN, "--help"], "nix": ["nix-store", "--version"],
                            "dump help": [CAIRN, "dump", "--help"], "python": [sys.executable, "-c", "pass"]})
    print(ratio_line("python -c pass (the floor)", best["python"], best["nix"], "nix-store --version", None))
    print(ratio_line("cairn dump --help", best["dump help"], best["nix"], "nix-store --version", None))
    print(ratio_line("cairn --help", best["help"], best["nix"], "nix-store --version", 2.0))


if __name__ == "__main__":
    main()
