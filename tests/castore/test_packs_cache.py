"""CachedPackStore: hits stay off the inner store, the directory stays under its bound, and no
race, restart or damaged file makes a read return wrong bytes."""

from __future__ import annotations

import os
import random
import threading
from pathlib import Path
from typing import Sequence

import pytest

from castore.errors import CorruptionError
from castore.storage.packs_cache import CachedPackStore
from castore.storage.packs_memory import MemoryPackStore
from castore.storage.packs_s3 import S3PackStore
from tests.castore.test_packstore_conformance import pack

ENTRY = 32 + 1000
"""Bytes on disk of one cached 1000-byte range (its BLAKE3, then the bytes)."""


class RecordingPackStore(MemoryPackStore):
    """A memory pack store that remembers the ranges each read asked it for."""

    def __init__(self) -> None:
        super().__init__()
        self.reads: list[list[tuple[int, int]]] = []

    def read(self, name: str, ranges: Sequence[tuple[int, int]]) -> list[bytes]:
        self.reads.append(list(ranges))
        return super().read(name, ranges)


@pytest.fixture
def inner() -> RecordingPackStore:
    return RecordingPackStore()


def stored(inner: RecordingPackStore, seed: int = 1, size: int = 100_000) -> tuple[str, bytes]:
    name, data = pack(seed, size)
    inner.put(name, data)
    return name, data


def cached_bytes(directory: Path) -> int:
    return sum(f.stat().st_size for f in directory.rglob("*") if f.is_file())


def test_a_second_read_is_served_from_disk_and_only_misses_reach_the_inner_store(inner, tmp_path) -> None:
    cache = CachedPackStore(inner, str(tmp_path), 1 << 20)
    name, data = stored(inner)
    assert cache.read(name, [(0, 1000), (5000, 1000)]) == [data[:1000], data[5000:6000]]
    assert cache.read(name, [(0, 1000), (5000, 1000)]) == [data[:1000], data[5000:6000]]
    assert cache.read(name, [(5000, 1000), (9000, 1000), (0, 1000)]) == [data[5000:6000], data[9000:10_000],
                                                                        data[:1000]]
    assert inner.reads == [[(0, 1000), (5000, 1000)], [(9000, 1000)]]


def test_the_least_recently_read_ranges_are_evicted_past_the_bound(inner, tmp_path) -> None:
    cache = CachedPackStore(inner, str(tmp_path), 3 * ENTRY)
    name, data = stored(inner)
    for offset in (0, 1000, 2000):
        cache.read(name, [(offset, 1000)])
    cache.read(name, [(0, 1000)])  # now the most recent: 1000 goes first
    cache.read(name, [(3000, 1000)])
    assert cached_bytes(tmp_path) <= 3 * ENTRY
    inner.reads.clear()
    assert cache.read(name, [(0, 1000), (2000, 1000), (3000, 1000)]) == [data[:1000], data[2000:3000],
                                                                        data[3000:4000]]
    assert inner.reads == []
    assert cache.read(name, [(1000, 1000)]) == [data[1000:2000]]
    assert inner.reads == [[(1000, 1000)]]


def test_a_range_larger_than_the_bound_is_read_but_not_cached(inner, tmp_path) -> None:
    cache = CachedPackStore(inner, str(tmp_path), 2 * ENTRY)
    name, data = stored(inner)
    assert cache.read(name, [(0, 50_000)]) == [data[:50_000]]
    assert cached_bytes(tmp_path) == 0


def test_a_damaged_or_vanished_cache_file_is_a_miss_never_wrong_bytes(inner, tmp_path) -> None:
    cache = CachedPackStore(inner, str(tmp_path), 1 << 20)
    name, data = stored(inner)
    cache.read(name, [(0, 1000), (1000, 1000)])
    damaged = Path(cache.path((name, 0, 1000)))
    damaged.write_bytes(damaged.read_bytes()[:-1] + b"?")
    os.unlink(cache.path((name, 1000, 1000)))
    assert cache.read(name, [(0, 1000), (1000, 1000)]) == [data[:1000], data[1000:2000]]
    assert inner.reads[-1] == [(0, 1000), (1000, 1000)]


def test_a_new_cache_on_the_same_directory_keeps_the_ranges_within_its_own_bound(inner, tmp_path) -> None:
    name, data = stored(inner)
    first = CachedPackStore(inner, str(tmp_path), 1 << 20)
    first.read(name, [(offset, 1000) for offset in range(0, 10_000, 1000)])
    os.close(os.open(tmp_path / name[:2] / ".leftover-from-a-crash", os.O_CREAT | os.O_WRONLY))
    inner.reads.clear()
    second = CachedPackStore(inner, str(tmp_path), 4 * ENTRY)
    assert cached_bytes(tmp_path) <= 4 * ENTRY
    assert second.read(name, [(9000, 1000)]) == [data[9000:10_000]]
    assert inner.reads == []


def test_deleting_a_pack_drops_its_cached_ranges(inner, tmp_path) -> None:
    cache = CachedPackStore(inner, str(tmp_path), 1 << 20)
    name, _ = stored(inner)
    cache.read(name, [(0, 1000)])
    cache.delete(name)
    assert cached_bytes(tmp_path) == 0
    with pytest.raises(CorruptionError, match=name):
        cache.read(name, [(0, 1000)])


def test_concurrent_readers_sharing_a_directory_always_get_the_right_bytes(inner, tmp_path) -> None:
    packs = [stored(inner, seed) for seed in range(4)]
    # Two caches on one directory stand for two processes: each evicts files the other counts.
    caches = [CachedPackStore(inner, str(tmp_path), 20 * ENTRY) for _ in range(2)]
    wrong: list[str] = []

    def reader(seed: int) -> None:
        rng = random.Random(seed)
        for _ in range(300):
            name, data = rng.choice(packs)
            offsets = [rng.randrange(0, 60) * 1000 for _ in range(rng.randrange(1, 4))]
            got = rng.choice(caches).read(name, [(offset, 1000) for offset in offsets])
            if got != [data[offset:offset + 1000] for offset in offsets]:
                wrong.append(name)

    threads = [threading.Thread(target=reader, args=(seed,)) for seed in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert wrong == []
    assert cached_bytes(tmp_path) <= 2 * 20 * ENTRY


def test_cache_hits_send_no_request_to_object_storage(s3_url: str, tmp_path) -> None:
    s3 = S3PackStore(s3_url)
    cache = CachedPackStore(s3, str(tmp_path), 1 << 20)
    name, data = pack(9)
    cache.put(name, data)
    ranges = [(0, 1000), (50_000, 4096)]
    assert cache.read(name, ranges) == cache.read(name, ranges) == [data[o:o + n] for o, n in ranges]
    assert s3.requests == {"put": 1, "get": 1}


def test_the_frames_of_a_pack_put_here_are_kept_and_read_back_without_the_inner_store(inner, tmp_path) -> None:
    cache = CachedPackStore(inner, str(tmp_path), 1 << 20)
    name, data = pack(3, 100_000)
    cache.put(name, data)
    cache.keep(name, memoryview(data), [(0, 1000), (1000, 5000), (6000, 0)])
    assert cache.read(name, [(1000, 5000), (0, 1000)]) == [data[1000:6000], data[:1000]]
    assert inner.reads == []
    assert cache.read(name, [(6000, 1000)]) == [data[6000:7000]]  # not a frame it was told of
    assert inner.reads == [[(6000, 1000)]]
