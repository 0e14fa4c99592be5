"""Run every benchmark in bench/ and print its ratio lines (before_after.py, which compares two
checkouts, is a driver, not a figure: run it by hand; so are the robustness checks, which have no
peer: crash_safety, full_disk (needs root), fuzz (`make fuzz`) and load)."""

from __future__ import annotations

import runpy
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent

if __name__ == "__main__":
    sys.path.insert(0, str(HERE))
    names = sys.argv[1:] or sorted(p.stem for p in HERE.glob("*.py")
                                   if p.stem not in ("common", "cluster_services", "shootout", "run_all", "before_after",
                                                     "crash_safety", "full_disk", "fuzz", "load"))
    for name in names:
        print(f"== {name}", flush=True)
        sys.argv = [str(HERE / f"{name}.py")]  # each with its default options, not run_all's arguments
        try:
            runpy.run_path(sys.argv[0], run_name="__main__")
        except SystemExit as e:  # a script that ends in sys.exit(main()) must not end the run
            if e.code:
                print(f"== {name} exited with {e.code}", flush=True)
