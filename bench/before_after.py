"""Before/after: one bench script run for two checkouts in turn, N rounds, medians compared.

Usage: python bench/before_after.py --before /work/baseline --after /work/main [--rounds 3] \
           [--corpus DIR] [store_import store_dump bridge_copy fuse_hash]

Why: the machine is shared and noisy, so figures from two separate sessions cannot be compared.
Here the two checkouts run alternately (before, after, then after, before, ...) under the
same conditions, each with its own `.venv/bin/python <checkout>/bench/<script>.py` and the same
corpus (CAIRN_CORPUS), and the median of the rounds is kept. Each run's headline is the last
ratio line it prints (its total): Cairn's seconds and its peer's. Printed per script: the
median Cairn time before and after, after/before, and the median Cairn/peer ratio of each side
(the peer runs beside Cairn in every run, so a change in it shows how much the machine moved).
"""

from __future__ import annotations

import argparse
import os
import re
import statistics
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

SCRIPTS = ["store_import", "store_dump", "bridge_copy", "fuse_hash"]
HEADLINE = re.compile(r"^(?P<what>.+): cairn (?P<cairn>[\d.]+) s vs (?P<peer_name>.+?) (?P<peer>[\d.]+) s -> ratio")


@dataclass(frozen=True)
class Run:
    cairn: float
    peer: float

    @property
    def ratio(self) -> float:
        return self.cairn / self.peer


def run_once(side: str, checkout: Path, script: str, corpus: Path) -> Run:
    """One run of `script` in `checkout`; its last ratio line, parsed."""
    env = dict(os.environ, CAIRN_CORPUS=str(corpus))
    argv = [str(checkout / ".venv" / "bin" / "python"), str(checkout / "bench" / f"{script}.py")]
    out = subprocess.run(argv, cwd=checkout, env=env, check=True, stdout=subprocess.PIPE, text=True).stdout
    headlines = [m for m in map(HEADLINE.match, out.splitlines()) if m]
    if not headlines:
        sys.exit(f"{' '.join(argv)} printed no ratio line:\n{out}")
    last = headlines[-1]
    print(f"    {side:6} {last.string}", flush=True)
    return Run(float(last["cairn"]), float(last["peer"]))


def compare(script: str, before: Path, after: Path, rounds: int, corpus: Path) -> str:
    checkouts = {"before": before, "after": after}
    runs: dict[str, list[Run]] = {"before": [], "after": []}
    for i in range(rounds):
        print(f"  {script}, round {i + 1}/{rounds}", flush=True)
        for side in ("before", "after") if i % 2 == 0 else ("after", "before"):
            runs[side].append(run_once(side, checkouts[side], script, corpus))
    b, a = (statistics.median(r.cairn for r in runs[side]) for side in ("before", "after"))
    rb, ra = (statistics.median(r.ratio for r in runs[side]) for side in ("before", "after"))
    return (f"{script} (median of {rounds}): cairn before {b:.3f} s, after {a:.3f} s -> after/before {a / b:.3f}x; "
            f"ratio to peer before {rb:.2f}x, after {ra:.2f}x")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--before", type=Path, required=True, help="checkout with its own .venv")
    p.add_argument("--after", type=Path, required=True, help="checkout with its own .venv")
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--corpus", type=Path, help="default: $CAIRN_CORPUS, else AFTER/bench/out/corpus")
    p.add_argument("scripts", nargs="*", default=SCRIPTS, metavar="SCRIPT", help=f"default: {' '.join(SCRIPTS)}")
    args = p.parse_args()
    before, after = args.before.resolve(), args.after.resolve()
    corpus = args.corpus or Path(os.environ.get("CAIRN_CORPUS", after / "bench" / "out" / "corpus"))
    for checkout in (before, after):
        for script in args.scripts:
            if not (checkout / "bench" / f"{script}.py").is_file():
                sys.exit(f"{checkout} has no bench/{script}.py")
        if not (checkout / ".venv" / "bin" / "python").is_file():
            sys.exit(f"{checkout} has no .venv: python3 -m venv .venv && .venv/bin/pip install -e '.[test]'")
    summary = [compare(script, before, after, args.rounds, corpus.resolve()) for script in args.scripts]
    print("\n".join(summary))


if __name__ == "__main__":
    main()
