"""`cairn castore export` of Django-5.0 (3,653 small files) vs `cp -r` of the same tree.

Both write into a fresh destination on the same file system; the removal of the previous copy
is synced before each run. Runs alternate; best of 5. Target: ratio <= 2x.
"""

from __future__ import annotations

import os
import shutil
import subprocess

from common import CAIRN, ROOT, best_of, corpus_trees, fresh_dir, ratio_line, timed

WORK = ROOT / "bench" / "out" / "castore-export"
TREE = "Django-5.0"


def main() -> None:
    tree = next(t for t in corpus_trees() if t.name == TREE)
    store = fresh_dir(WORK / "store")
    root = subprocess.run([CAIRN, "castore", "import", "--store", f"local://{store}", str(tree)], check=True,
                          capture_output=True, text=True).stdout.split()[1]
    dest = WORK / "copy"

    def fresh() -> None:
        shutil.rmtree(dest, ignore_errors=True)
        os.sync()

    cairn, cp = [], []
    for _ in range(5):
        fresh()
        cairn.append(timed([CAIRN, "castore", "export", "--store", f"local://{store}", root, str(dest)]))
        fresh()
        cp.append(timed(["cp", "-r", str(tree), str(dest)]))
    print(ratio_line(f"castore export {TREE}", min(cairn), min(cp), "cp -r", 2.0))


if __name__ == "__main__":
    main()
