"""Sequential read throughput of the largest corpus file through `cairn mount` vs a native read.

The file is imported alone into a fresh local store. Each round mounts afresh (cold caches)
and reads it from start to end in 1 MiB reads; the native side runs the same loop on the
original file, which the page cache holds. Best of 3 each; the mounted copy is checked
against the original. Prints both throughputs and their ratio (no target).
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import time
from pathlib import Path

from common import CAIRN, corpus_trees, fresh_dir
from fuse_hash import ROUNDS, WORK, mounted

BUFFER = 1 << 20


def largest_file(trees: list[Path]) -> Path:
    files = (Path(d, f) for tree in trees for d, _, names in os.walk(tree) for f in names)
    return max((f for f in files if not f.is_symlink()), key=lambda f: f.stat().st_size)


def read_seconds(path: Path) -> float:
    buffer = bytearray(BUFFER)
    start = time.perf_counter()
    with open(path, "rb", buffering=0) as f:
        while f.readinto(buffer):
            pass
    return time.perf_counter() - start


def sha256(path: Path) -> str:
    with open(path, "rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()


def main() -> None:
    original = largest_file(corpus_trees())
    size = original.stat().st_size
    store = f"local://{fresh_dir(WORK / 'read-store')}"
    basename = os.path.basename(subprocess.run([CAIRN, "import", "--store", store, str(original)],
                                               check=True, capture_output=True, text=True).stdout.strip())
    native = mounted_best = float("inf")
    for _ in range(ROUNDS):
        native = min(native, read_seconds(original))
        with mounted(store, WORK / "mnt") as mountpoint:
            mounted_best = min(mounted_best, read_seconds(mountpoint / basename))
            if sha256(mountpoint / basename) != sha256(original):
                raise AssertionError(f"{basename} differs from {original} through the mount")
    mount_mbs, native_mbs = size / mounted_best / 1e6, size / native / 1e6
    print(f"sequential read of {original.name} ({size / 1e6:.1f} MB), fresh mount: cairn mount {mount_mbs:.0f} MB/s "
          f"vs native (page cache) {native_mbs:.0f} MB/s -> ratio {mounted_best / native:.1f}x the time")


if __name__ == "__main__":
    main()
