"""Archival of the corpus's seven store paths: space and time.

Space: Cairn's stored bytes after `cairn archive file://<xz cache>` against the xz cache
(`nix copy --to file://`), the zstd cache (`?compression=zstd`) and NAR-level chunking as
attic does it (FastCDC 16/64/256 KiB over each whole NAR, dedup, zstd per chunk), computed
here. Target: <= 0.55x of the xz cache.
Time: `cairn archive` against the unavoidable work, decompressing every source NAR and
hashing it (sha256), in this process. Target: <= 2x.
"""

from __future__ import annotations

import hashlib
import lzma
import subprocess
import time

import blake3
import zstandard
from fastcdc.fastcdc_cy import fastcdc_cy

from common import CAIRN, NIX_FLAGS, ROOT, corpus_trees, disk_bytes, fresh_dir, ratio_line

WORK = ROOT / "bench" / "out" / "archive"


def nix_paths() -> list[str]:
    return [subprocess.run(["nix-store", "--add", str(t)], check=True, capture_output=True,
                           text=True).stdout.strip() for t in corpus_trees()]


def make_cache(paths: list[str], compression: str):
    cache = fresh_dir(WORK / f"{compression}-cache")
    subprocess.run(["nix", *NIX_FLAGS, "copy", "--to", f"file://{cache}?compression={compression}", *paths],
                   check=True, capture_output=True)
    return cache


def attic_bytes(paths: list[str]) -> int:
    """FastCDC over each whole NAR, each distinct chunk zstd-compressed on its own."""
    seen: set[bytes] = set()
    total = 0
    cctx = zstandard.ZstdCompressor(level=3)
    for path in paths:
        nar = subprocess.run(["nix-store", "--dump", path], check=True, capture_output=True).stdout
        for c in fastcdc_cy(nar, 16 * 1024, 64 * 1024, 256 * 1024):
            chunk = nar[c.offset:c.offset + c.length]
            digest = blake3.blake3(chunk).digest()
            if digest not in seen:
                seen.add(digest)
                total += len(cctx.compress(chunk))
    return total


def unavoidable_seconds(cache) -> float:
    """Decompress every .nar.xz of the cache and sha256 it."""
    start = time.perf_counter()
    for nar in sorted((cache / "nar").glob("*.nar.xz")):
        h = hashlib.sha256()
        with lzma.open(nar) as f:
            while piece := f.read(1 << 20):
                h.update(piece)
    return time.perf_counter() - start


def main() -> None:
    paths = nix_paths()
    xz = make_cache(paths, "xz")
    zst = make_cache(paths, "zstd")
    store = fresh_dir(WORK / "cairn-store")
    start = time.perf_counter()
    subprocess.run([CAIRN, "archive", "--store", f"local://{store}", f"file://{xz}"], check=True,
                   stdout=subprocess.DEVNULL)
    archive_seconds = time.perf_counter() - start
    cairn, xz_bytes, zst_bytes = disk_bytes(store), disk_bytes(xz), disk_bytes(zst)
    print(ratio_line("stored bytes vs xz cache", cairn / 1e6, xz_bytes / 1e6, "xz cache", 0.55, "MB"))
    print(ratio_line("stored bytes vs zstd cache", cairn / 1e6, zst_bytes / 1e6, "zstd cache", 0.55, "MB"))
    attic = attic_bytes(paths)
    print(ratio_line("stored bytes vs attic-style NAR chunking", cairn / 1e6, attic / 1e6,
                     "FastCDC 16/64/256 KiB + zstd per chunk", 0.55, "MB"))
    print(ratio_line("archive time", archive_seconds, unavoidable_seconds(xz),
                     "xz decompression + sha256 of the NARs", 2.0))


if __name__ == "__main__":
    main()
