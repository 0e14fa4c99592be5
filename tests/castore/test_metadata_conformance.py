"""The MetadataStore contract, run against every backend (a new backend is one more fixture param)."""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Callable, Iterator

import pytest

from castore.storage import metadata
from castore.storage.metadata import MetadataStore, Table
from castore.storage.metadata_lmdb import LmdbMetadataStore
from castore.storage.metadata_memory import MemoryMetadataStore
from castore.storage.metadata_postgres import PostgresMetadataStore

PLAIN = Table("plain")
FIXED = Table("fixed", insert_only=True)


@pytest.fixture(params=["memory", "lmdb", "postgres"])
def reopen(request, tmp_path: Path) -> Callable[[], MetadataStore]:
    """Opens a store over the same place each time (for durability)."""
    if request.param == "memory":
        store = MemoryMetadataStore()
        return lambda: store
    if request.param == "postgres":
        url = request.getfixturevalue("postgres_url")
        return lambda: PostgresMetadataStore.open(url)
    return lambda: LmdbMetadataStore.open(str(tmp_path / "meta"))


@pytest.fixture
def meta(reopen: Callable[[], MetadataStore]) -> Iterator[MetadataStore]:
    store = reopen()
    yield store
    store.close()


def test_committed_records_read_back_one_and_many_and_unknown_keys_are_none(meta: MetadataStore) -> None:
    meta.commit({PLAIN: {b"a": b"1", b"b": b"2"}, FIXED: {b"a": b"other table"}})
    assert meta.get(PLAIN, b"a") == b"1"
    assert meta.get(FIXED, b"a") == b"other table"
    assert meta.get(PLAIN, b"zz") is None
    assert meta.get(Table("never written"), b"a") is None
    assert meta.get_many(PLAIN, [b"b", b"zz", b"a"]) == [b"2", None, b"1"]
    assert meta.get_many(PLAIN, []) == []


def test_an_insert_only_table_keeps_the_first_value_and_a_plain_one_the_last(meta: MetadataStore) -> None:
    meta.commit({PLAIN: {b"k": b"first"}, FIXED: {b"k": b"first"}})
    meta.commit({PLAIN: {b"k": b"second"}, FIXED: {b"k": b"second"}})
    assert meta.get(PLAIN, b"k") == b"second"
    assert meta.get(FIXED, b"k") == b"first"


def test_deletes_apply_in_the_same_commit_before_its_puts(meta: MetadataStore) -> None:
    meta.commit({PLAIN: {b"gone": b"1", b"kept": b"2"}, FIXED: {b"k": b"old"}})
    meta.commit({FIXED: {b"k": b"new"}}, {PLAIN: [b"gone", b"never there"], FIXED: [b"k"]})
    assert meta.get(PLAIN, b"gone") is None
    assert meta.get(PLAIN, b"kept") == b"2"
    assert meta.get(FIXED, b"k") == b"new"  # deleted, then inserted afresh


def test_a_failing_commit_writes_nothing(meta: MetadataStore) -> None:
    meta.commit({PLAIN: {b"before": b"1"}})
    with pytest.raises(ValueError):
        meta.commit({PLAIN: {b"a": b"1"}, FIXED: {b"": b"an empty key is refused"}}, {PLAIN: [b"before"]})
    assert meta.get(PLAIN, b"a") is None
    assert meta.get(PLAIN, b"before") == b"1"


def test_scan_pages_through_keys_after_a_key_in_order(meta: MetadataStore) -> None:
    keys = [b"%03d" % i for i in range(0, 50, 2)]
    meta.commit({PLAIN: {k: k + b"v" for k in reversed(keys)}, FIXED: {b"001": b"elsewhere"}})
    assert meta.scan(PLAIN, limit=3) == [(k, k + b"v") for k in keys[:3]]
    assert meta.scan(PLAIN, b"004", limit=2) == [(b"006", b"006v"), (b"008", b"008v")]
    assert meta.scan(PLAIN, b"005", limit=1) == [(b"006", b"006v")]  # not itself a key
    assert meta.scan(PLAIN, b"048") == []
    assert meta.scan(Table("empty")) == []


def test_items_walks_every_record_across_pages(meta: MetadataStore, monkeypatch) -> None:
    monkeypatch.setattr(metadata, "PAGE", 7)
    records = {b"%05d" % i: b"%d" % i for i in range(100)}
    meta.commit({PLAIN: records})
    assert list(meta.items(PLAIN)) == sorted(records.items())
    exact = {b"%05d" % i: b"" for i in range(14)}  # a whole number of pages
    meta.commit({FIXED: exact})
    assert list(meta.items(FIXED)) == sorted(exact.items())


def test_items_may_write_while_it_walks(meta: MetadataStore, monkeypatch) -> None:
    """No transaction is held across pages: the caller may commit as it goes."""
    monkeypatch.setattr(metadata, "PAGE", 3)
    meta.commit({PLAIN: {b"%02d" % i: b"" for i in range(10)}})
    for key, _ in meta.items(PLAIN):
        meta.commit({FIXED: {key: b"seen"}})
    assert len(list(meta.items(FIXED))) == 10


def test_next_id_never_repeats(meta: MetadataStore) -> None:
    ids = [meta.next_id("packs") for _ in range(200)]
    assert len(set(ids)) == 200
    assert all(isinstance(i, int) and 0 <= i < 2 ** 32 for i in ids)
    other = [meta.next_id("other") for _ in range(3)]
    assert len(set(other)) == 3


def test_records_and_ids_survive_reopening(reopen: Callable[[], MetadataStore]) -> None:
    first = reopen()
    first.commit({PLAIN: {b"k": b"v"}})
    before = {first.next_id("packs") for _ in range(5)}
    first.close()
    second = reopen()
    assert second.get(PLAIN, b"k") == b"v"
    assert not before & {second.next_id("packs") for _ in range(100)}
    second.close()


def test_size_bytes_grows_with_the_records(meta: MetadataStore) -> None:
    meta.commit({PLAIN: {b"seed": b"x"}})
    small = meta.size_bytes()
    meta.commit({PLAIN: {b"%06d" % i: b"v" * 200 for i in range(5000)}})
    assert meta.size_bytes() > small >= 0


def test_try_lock_has_one_holder_at_a_time_and_is_free_again_after(meta: MetadataStore) -> None:
    with meta.try_lock("gc") as first:
        assert first
        with meta.try_lock("gc") as second:
            assert not second
        with meta.try_lock("other") as other:
            assert other
    with meta.try_lock("gc") as again:
        assert again


def test_lock_waits_for_the_holder(meta: MetadataStore) -> None:
    events: list[str] = []
    holding = threading.Event()

    def hold() -> None:
        with meta.lock("path-info-00"):
            events.append("first in")
            holding.set()
            time.sleep(0.2)
            events.append("first out")

    holder = threading.Thread(target=hold)
    holder.start()
    holding.wait(10)
    with meta.lock("path-info-00"):
        events.append("second in")
    holder.join()
    assert events == ["first in", "first out", "second in"]
    with meta.try_lock("path-info-00") as free:
        assert free


IDS = """
import sys
from castore.storage.metadata_lmdb import LmdbMetadataStore
store = LmdbMetadataStore.open(sys.argv[1])
print("ready", flush=True)
sys.stdin.readline()
print(" ".join(str(store.next_id("packs")) for _ in range(500)))
store.close()
"""


def test_lmdb_next_id_is_unique_across_two_processes_at_once(tmp_path: Path) -> None:
    procs = [subprocess.Popen([sys.executable, "-c", IDS, str(tmp_path / "meta")], stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, text=True) for _ in range(2)]
    for proc in procs:
        assert proc.stdout.readline() == "ready\n"
    for proc in procs:
        proc.stdin.write("go\n")
        proc.stdin.flush()
    ids = []
    for proc in procs:
        out, _ = proc.communicate(timeout=60)
        assert proc.returncode == 0
        ids += [int(i) for i in out.split()]
    assert len(ids) == len(set(ids)) == 1000


def test_lmdb_open_shares_one_environment_per_directory_until_the_last_close(tmp_path: Path) -> None:
    first = LmdbMetadataStore.open(str(tmp_path / "meta"))
    second = LmdbMetadataStore.open(str(tmp_path / "meta/../meta"))
    assert first is second
    first.close()
    second.commit({PLAIN: {b"k": b"v"}})  # still open: second holds it
    second.close()
    third = LmdbMetadataStore.open(str(tmp_path / "meta"))
    assert third is not first and third.get(PLAIN, b"k") == b"v"
    third.close()


def test_lmdb_reading_a_new_table_while_another_thread_commits_does_not_deadlock(tmp_path: Path) -> None:
    import threading

    store = LmdbMetadataStore.open(str(tmp_path / "meta"))
    done = threading.Event()

    def commit() -> None:
        while not done.is_set():
            store.commit({PLAIN: {b"%d" % i: b"x" for i in range(2000)}})

    writer = threading.Thread(target=commit)
    writer.start()
    try:
        for n in range(20):  # each opens (creates) a table (MAX_DBS bounds them)
            assert store.get(Table(f"new-{n}"), b"k") is None
    finally:
        done.set()
        writer.join()
        store.close()
