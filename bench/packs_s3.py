"""Packs on object storage (a real SeaweedFS on loopback) vs packs on the local file system:
put one 64 MiB pack; read 1,024 random 64 KiB ranges of it one read at a time, all in one read
(merged range GETs), and one at a time again through the on-disk range cache once it is warm.
Prints the time ratios and the object-storage requests each step sent.

No target: the figure says what object storage costs per pack and per range, for the issue's
requests-per-GiB and requests-per-NAR figures.
"""

from __future__ import annotations

import os
import random
import time

from common import ROOT, fresh_dir

from castore.storage.packs import PackStore, pack_name
from castore.storage.packs_cache import CachedPackStore
from castore.storage.packs_fs import FsPackStore
from castore.storage.packs_s3 import S3PackStore
from tests.services.seaweed import BUCKET, running_seaweedfs

WORK = ROOT / "bench" / "out" / "packs_s3"
PACK = 64 << 20
RANGE = 64 << 10
READS = 1024
ROUNDS = 3


def seconds(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def best_put(store: PackStore, packs: list[bytes]) -> float:
    """Best of one put of each (distinct) pack: a second put of one pack would do nothing."""
    return min(seconds(lambda: store.put(pack_name(data), data)) for data in packs)


def line(what: str, s3: float, fs: float, requests: int) -> str:
    return f"{what}: s3 {s3:.3f} s vs fs {fs:.3f} s -> ratio {s3 / fs:.1f}x; {requests} object-storage requests"


def main() -> None:
    rng = random.Random(12)
    packs = [rng.randbytes(PACK) for _ in range(ROUNDS)]
    name = pack_name(packs[0])
    ranges = [(rng.randrange(0, PACK - RANGE), RANGE) for _ in range(READS)]
    fs = FsPackStore(str(fresh_dir(WORK / "fs")))
    with running_seaweedfs() as weed:
        os.environ.update(weed.env)  # obstore reads the endpoint and credentials from there
        s3 = S3PackStore(f"s3://{BUCKET}/bench")
        fs_put, s3_put = best_put(fs, packs), best_put(s3, packs)
        print(line("put one 64 MiB pack", s3_put, fs_put, s3.requests["put"] // ROUNDS))
        for what, read in (("1,024 x 64 KiB ranges, one read each", lambda st: [st.read(name, [r]) for r in ranges]),
                           ("1,024 x 64 KiB ranges, one read", lambda st: st.read(name, ranges))):
            before = s3.requests["get"]
            s3_time = min(seconds(lambda: read(s3)) for _ in range(ROUNDS))
            fs_time = min(seconds(lambda: read(fs)) for _ in range(ROUNDS))
            print(line(what, s3_time, fs_time, (s3.requests["get"] - before) // ROUNDS))
        cached = CachedPackStore(s3, str(fresh_dir(WORK / "cache")), 1 << 30)
        [cached.read(name, [r]) for r in ranges]  # warm it
        before = s3.requests["get"]
        warm = min(seconds(lambda: [cached.read(name, [r]) for r in ranges]) for _ in range(ROUNDS))
        fs_time = min(seconds(lambda: [fs.read(name, [r]) for r in ranges]) for _ in range(ROUNDS))
        print(line("1,024 x 64 KiB ranges, one read each, warm range cache", warm, fs_time,
                   (s3.requests["get"] - before) // ROUNDS))
    fs.close()


if __name__ == "__main__":
    main()
