"""The PackStore contract, run against every backend (a new backend is one more fixture param)."""

from __future__ import annotations

import os
import random
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator

import obstore
import pytest

from castore.errors import CorruptionError, ValidationError
from castore.storage.packs import PackStore, pack_name
from castore.storage.packs_cache import CachedPackStore
from castore.storage.packs_fs import FsPackStore
from castore.storage.packs_memory import MemoryPackStore
from castore.storage.packs_s3 import S3PackStore


@dataclass
class Backend:
    open: Callable[[], PackStore]
    """A store over the same place as the last one opened (for durability)."""
    truncate: Callable[[PackStore, str, int], None]
    """Cut a stored pack short, as a damaged disk or a lost upload would."""


def _memory() -> Backend:
    store = MemoryPackStore()

    def truncate(s: MemoryPackStore, name: str, size: int) -> None:
        s._packs[name] = s._packs[name][:size]

    return Backend(lambda: store, truncate)


def _fs(tmp_path: Path) -> Backend:
    def truncate(s: FsPackStore, name: str, size: int) -> None:
        os.truncate(s.path(name), size)

    return Backend(lambda: FsPackStore(str(tmp_path / "packs")), truncate)


def _s3(url: str) -> Backend:
    def truncate(s: S3PackStore, name: str, size: int) -> None:
        [head] = s.read(name, [(0, size)])
        obstore.put(s._store, s.key(name), head)  # an overwrite, as a broken upload or a bad actor would

    return Backend(lambda: S3PackStore(url), truncate)


def _cached(tmp_path: Path) -> Backend:
    """The range cache over a file system store: a combinator keeps the contract it wraps."""
    fs = _fs(tmp_path)

    def truncate(s: CachedPackStore, name: str, size: int) -> None:
        fs.truncate(s.inner, name, size)

    return Backend(lambda: CachedPackStore(fs.open(), str(tmp_path / "cache"), 1 << 20), truncate)


@pytest.fixture(params=["memory", "fs", "s3", "cached"])
def backend(request, tmp_path: Path) -> Backend:
    if request.param == "s3":
        return _s3(request.getfixturevalue("s3_url"))  # real SeaweedFS, started only if s3 runs
    return {"memory": _memory, "fs": lambda: _fs(tmp_path), "cached": lambda: _cached(tmp_path)}[request.param]()


@pytest.fixture
def packs(backend: Backend) -> Iterator[PackStore]:
    store = backend.open()
    yield store
    store.close()


def pack(seed: int, size: int = 100_000) -> tuple[str, bytes]:
    data = random.Random(seed).randbytes(size)
    return pack_name(data), data


def test_a_put_pack_reads_back_by_several_ranges_at_once(packs: PackStore) -> None:
    name, data = pack(1)
    packs.put(name, data)
    ranges = [(0, 10), (50_000, 4096), (99_990, 10), (7, 0), (0, len(data))]
    assert packs.read(name, ranges) == [data[o:o + n] for o, n in ranges]


def test_a_pack_is_put_from_a_memoryview(packs: PackStore) -> None:
    name, data = pack(2)
    packs.put(name, memoryview(bytearray(data)))
    assert packs.read(name, [(0, len(data))]) == [data]


def test_list_names_every_pack_with_its_size_and_delete_removes_one(packs: PackStore) -> None:
    stored = dict(pack(seed, size) for seed, size in ((3, 1), (4, 5000), (5, 70_000)))
    for name, data in stored.items():
        packs.put(name, data)
    assert sorted(packs.list()) == sorted((name, len(data)) for name, data in stored.items())
    gone = next(iter(stored))
    packs.delete(gone)
    packs.delete(gone)  # twice: no error
    assert gone not in dict(packs.list())
    with pytest.raises(CorruptionError, match=gone):
        packs.read(gone, [(0, 1)])


def test_putting_an_existing_pack_again_changes_nothing(packs: PackStore) -> None:
    name, data = pack(6)
    packs.put(name, data)
    packs.put(name, data)
    assert list(packs.list()) == [(name, len(data))]
    assert packs.read(name, [(0, len(data))]) == [data]


def test_a_missing_pack_is_corruption_naming_it(packs: PackStore) -> None:
    name, _ = pack(7)
    with pytest.raises(CorruptionError, match=name):
        packs.read(name, [(0, 1)])


def test_a_range_past_the_end_of_a_truncated_pack_is_corruption(backend: Backend, packs: PackStore) -> None:
    name, data = pack(8)
    packs.put(name, data)
    with pytest.raises(CorruptionError, match=name):
        packs.read(name, [(len(data) - 5, 10)])
    backend.truncate(packs, name, 1000)
    assert packs.read(name, [(0, 1000)]) == [data[:1000]]
    with pytest.raises(CorruptionError, match="truncated"):
        packs.read(name, [(0, 10), (900, 200)])


def test_names_that_are_not_64_hex_digits_are_refused(packs: PackStore) -> None:
    for bad in ("../../etc/passwd", "AB" * 32, "ab" * 31, ""):
        with pytest.raises(ValidationError):
            packs.put(bad, b"x")
        with pytest.raises(ValidationError):
            packs.read(bad, [(0, 1)])


def test_packs_survive_closing_and_reopening(backend: Backend) -> None:
    name, data = pack(9)
    first = backend.open()
    first.put(name, data)
    first.close()
    second = backend.open()
    assert second.read(name, [(100, 200)]) == [data[100:300]]
    second.close()


def test_many_packs_read_in_turn_keep_reading_past_the_open_file_bound(packs: PackStore) -> None:
    stored = [pack(100 + i, 64) for i in range(300)]
    for name, data in stored:
        packs.put(name, data)
    for _ in range(2):
        for name, data in stored:
            assert packs.read(name, [(0, 64)]) == [data]
