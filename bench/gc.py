"""`cairn gc`: what it gives back, how fast, in how much memory.

Imports the seven corpus trees into one store, roots four, and collects (grace 0: nothing else
writes). Figures: the store's bytes on disk after GC against a fresh store into which only the
four were imported (target: within 10%); GC seconds per GiB stored before it; the GC process's
peak RSS (target: below 300 MB).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time

from common import CAIRN, ROOT, corpus_trees, disk_bytes, fresh_dir

KEPT = ("Django-5.0", "Django-5.1", "numpy-2.1.0", "numpy-2.1.2")
"""Four of the seven: two keep the delta bases of the others, two are deltas against them."""


def cairn(*args: str) -> str:
    return subprocess.run([CAIRN, *args], check=True, capture_output=True, text=True).stdout


def synthetic_tree(root, seed: int):
    """About 0.46 GiB that neither compresses nor deduplicates: 25,000 small files and four of 100 MiB."""
    import random

    rng = random.Random(seed)
    for d in range(100):
        (root / f"d{d}").mkdir(parents=True)
        for f in range(250):
            (root / f"d{d}" / f"f{f}").write_bytes(rng.randbytes(rng.randint(1024, 4096)))
    for b in range(4):
        with open(root / f"big{b}", "wb") as out:
            for _ in range(100):
                out.write(rng.randbytes(1 << 20))
    return root


def gc_run(store) -> tuple[str, float, int]:
    """`cairn gc --grace 0`: its report, wall seconds, and its own peak RSS in bytes."""
    report, seconds, peak = gc_run(full)
    after, fresh = disk_bytes(full), disk_bytes(only)

    print(report.strip())
    print(f"store on disk: {before / 2**20:.1f} MiB before GC, {after / 2**20:.1f} MiB after; "
          f"a fresh store of the four: {fresh / 2**20:.1f} MiB")
    print(f"after GC / fresh four: {after / fresh:.3f} (target <= 1.10)")
    print(f"GC time: {seconds:.2f} s for {before / 2**30:.3f} GiB = {seconds / (before / 2**30):.1f} s per GiB stored")
    print(f"peak RSS of GC: {peak / 2**20:.0f} MiB (target < 300 MiB)")
    scale(work)


if __name__ == "__main__":
    main()
