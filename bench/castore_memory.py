"""Memory: peak RSS of `cairn castore import` of a 2 GiB file. Target: under 300 MB.

The file is pseudo-random (incompressible, no dedup) so every byte goes through chunking,
hashing, compression and the pack writer.
"""

from __future__ import annotations

import os
import resource
import subprocess
import time

from common import CAIRN, ROOT, fresh_dir

WORK = ROOT / "bench" / "out" / "memory"
SIZE = 2 << 30


def make_file(path) -> None:
    if path.exists() and path.stat().st_size == SIZE:
        return
    block = os.urandom(8 << 20)
    with open(path, "wb") as f:
        for i in range(SIZE // len(block)):
            f.write(block[:64] + i.to_bytes(8, "little") + block[72:])  # no two blocks alike


def main() -> None:
    WORK.mkdir(parents=True, exist_ok=True)
    big = WORK / "big.bin"
    make_file(big)
    store = fresh_dir(WORK / "cairn-store")
    start = time.perf_counter()
    subprocess.run([CAIRN, "castore", "import", "--store", f"local://{store}", str(big)], check=True,
                   stdout=subprocess.DEVNULL)
    seconds = time.perf_counter() - start
    peak_mb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    verdict = "ok" if peak_mb < 300 else "MISSED"
    print(f"import of a 2 GiB file: peak RSS {peak_mb:.0f} MB (target < 300 MB: {verdict}), "
          f"{SIZE / seconds / 1e6:.0f} MB/s")


if __name__ == "__main__":
    main()
