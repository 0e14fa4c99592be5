"""Memory: peak RSS of `cairn castore import` of a 2 GiB file of incompressible data. Target: under 300 MB.

The file is a BLAKE3 output stream keyed by os.urandom (every byte random, no block repeats),
so every byte goes through chunking, hashing, zstd and the pack writer, and the store keeps
about as many bytes as it was given. The import's MB/s is printed next to what BLAKE3 and
FastCDC alone do on the same data in the same run: the floor any import pays per byte.
"""

from __future__ import annotations

import os
import resource
import subprocess
import time

import blake3
from fastcdc.fastcdc_cy import fastcdc_cy

from common import CAIRN, ROOT, disk_bytes, fresh_dir

from castore.local.chunker import DEFAULT_PARAMS

WORK = ROOT / "bench" / "out" / "memory"
SIZE = 2 << 30
BLOCK = 8 << 20
SAMPLE = 256 << 20
"""Bytes of the file that BLAKE3 and FastCDC are timed on."""


def make_file(path) -> None:
    """2 GiB of a keyed BLAKE3 stream (a fresh key each time the file is made)."""
    if path.exists() and path.stat().st_size == SIZE:
        return
    stream = blake3.blake3(key=os.urandom(32))
    with open(path, "wb") as f:
        for offset in range(0, SIZE, BLOCK):
            f.write(stream.digest(length=BLOCK, seek=offset))


def floor_speeds(path) -> tuple[float, float]:
    """MB/s of BLAKE3 and of FastCDC (the store's chunking parameters) over SAMPLE bytes, from memory."""
    with open(path, "rb") as f:
        data = f.read(SAMPLE)
    start = time.perf_counter()
    blake3.blake3(data).digest()
    hashed = time.perf_counter() - start
    p = DEFAULT_PARAMS
    start = time.perf_counter()
    chunks = sum(1 for _ in fastcdc_cy(data, p.min_size, p.avg_size, p.max_size))
    chunked = time.perf_counter() - start
    assert chunks > SAMPLE // p.max_size
    return SAMPLE / hashed / 1e6, SAMPLE / chunked / 1e6


def main() -> None:
    WORK.mkdir(parents=True, exist_ok=True)
    big = WORK / "big.bin"
    make_file(big)
    blake3_speed, fastcdc_speed = floor_speeds(big)
    store = fresh_dir(WORK / "cairn-store")
    start = time.perf_counter()
    subprocess.run([CAIRN, "castore", "import", "--store", f"local://{store}", str(big)], check=True,
                   stdout=subprocess.DEVNULL)
    seconds = time.perf_counter() - start
    peak_mb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    stored = disk_bytes(store / "packs")
    verdict = "ok" if peak_mb < 300 else "MISSED"
    print(f"import of 2 GiB of incompressible data: peak RSS {peak_mb:.0f} MB (target < 300 MB: {verdict}); "
          f"{SIZE / seconds / 1e6:.0f} MB/s import vs BLAKE3 {blake3_speed:.0f} MB/s and FastCDC "
          f"{fastcdc_speed:.0f} MB/s alone (one core, same data); packs {stored / SIZE:.3f}x the input")


if __name__ == "__main__":
    main()
