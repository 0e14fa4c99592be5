"""Fuzz every parser that takes outside input (tests/fuzz/targets.py) under atheris, one after another.

    python bench/fuzz.py [--runs 1000000] [--timeout 10] [--rss-mb 500] [TARGET ...]

Each target starts from its checked-in seeds (tests/fuzz/seeds/<target>/) plus what earlier runs
found (bench/out/fuzz/<target>/); a crash, a hang (one input taking longer than --timeout) or RSS
above --rss-mb stops that target and leaves the input in bench/out/fuzz/crashes/. Copy a crash
into the seeds once it is fixed: tests/fuzz/test_seeds.py then replays it in every test run.
Prints one line per target and a summary; exits 1 if any target failed.
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from tests.fuzz.targets import TARGETS  # noqa: E402

OUT = ROOT / "bench" / "out" / "fuzz"
SEEDS = ROOT / "tests" / "fuzz" / "seeds"


def fuzz(target: str, runs: int, timeout: int, rss_mb: int) -> dict[str, object]:
    work = OUT / target
    crashes = OUT / "crashes"
    work.mkdir(parents=True, exist_ok=True)
    crashes.mkdir(parents=True, exist_ok=True)
    cmd = [sys.executable, str(ROOT / "tests" / "fuzz" / "run.py"), target, f"-runs={runs}",
           f"-timeout={timeout}", f"-rss_limit_mb={rss_mb}", "-print_final_stats=1",
           f"-artifact_prefix={crashes}/{target}-", str(work), str(SEEDS / target)]
    start = time.monotonic()
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, errors="replace")
    seconds = time.monotonic() - start
    stats = dict(re.findall(r"^stat::(\w+):\s+(\d+)", proc.stderr, re.M))
    artifact = re.search(r"Test unit written to (\S+)", proc.stderr)
    if proc.returncode != 0:
        (crashes / f"{target}.log").write_text(proc.stderr[-20000:])
    return {"target": target, "ok": proc.returncode == 0, "runs": int(stats.get("number_of_executed_units", 0)),
            "seconds": seconds, "peak_rss_mb": int(stats.get("peak_rss_mb", 0)),
            "artifact": artifact[1] if artifact else ""}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("targets", nargs="*", choices=[*TARGETS, []], metavar="TARGET")
    parser.add_argument("--runs", type=int, default=1_000_000)
    parser.add_argument("--timeout", type=int, default=10, help="seconds one input may take")
    parser.add_argument("--rss-mb", type=int, default=500)
    args = parser.parse_args()
    results = []
    for target in args.targets or TARGETS:
        r = fuzz(target, args.runs, args.timeout, args.rss_mb)
        results.append(r)
        status = "ok" if r["ok"] else f"FAILED ({r['artifact'] or 'see bench/out/fuzz/crashes'})"
        print(f"{target:18} {r['runs']:>9,} inputs {r['seconds']:7.0f} s  {r['runs'] / r['seconds']:7.0f}/s "
              f"peak RSS {r['peak_rss_mb']:4} MB  {status}", flush=True)
    failed = [r["target"] for r in results if not r["ok"]]
    total = sum(r["runs"] for r in results)
    print(f"{len(results)} targets, {total:,} inputs, {len(failed)} failed{': ' + ', '.join(failed) if failed else ''}; "
          f"max peak RSS {max(r['peak_rss_mb'] for r in results)} MB")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
