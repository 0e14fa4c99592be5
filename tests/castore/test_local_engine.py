"""The engine: one shared instance per store, batches, early commits, records of other layers,
any metadata and pack store."""

from __future__ import annotations

import errno
import random
import threading
import time
from pathlib import Path

import pytest

from castore.blobs.local import BLOBS, LocalBlobService, encode_chunk_list
from castore.digest import B3Digest
from castore.errors import BackendError, CorruptionError
from castore.local import packs as packs_module
from castore.local import records as records_module
from castore.local.engine import CHUNKS, LocalEngine
from castore.local.registry import open_engine
from castore.storage.metadata import Table
from castore.storage.metadata_memory import MemoryMetadataStore
from castore.storage.packs import pack_name
from castore.storage.packs_memory import MemoryPackStore

PATHINFO = Table("pathinfo")  # a table of another layer, unknown to castore


def committed(engine: LocalEngine, table: Table, key: bytes) -> bytes | None:
    """What the metadata store holds, ignoring what is only staged."""
    return engine.metadata.get(table, key)


def test_open_shares_one_engine_per_store_until_the_last_close(tmp_path: Path) -> None:
    first = open_engine(str(tmp_path / "s"))
    second = open_engine(str(tmp_path / "s/../s"))
    assert first is second
    first.close()
    assert open_engine(str(tmp_path / "s")) is second  # still open: second holds it
    second.close()
    second.close()
    third = open_engine(str(tmp_path / "s"))
    assert third is not first
    third.close()


def test_records_of_other_layers_are_staged_in_a_batch_and_committed_at_its_end(tmp_path: Path) -> None:
    engine = open_engine(str(tmp_path / "s"))
    with engine.batch():
        engine.records.put(PATHINFO, [(b"k", b"v1")])
        assert engine.records.get(PATHINFO, b"k") == b"v1"
        assert committed(engine, PATHINFO, b"k") is None
    assert committed(engine, PATHINFO, b"k") == b"v1"
    engine.records.put(PATHINFO, [(b"k", b"v2")])  # outside a batch: committed on return
    assert committed(engine, PATHINFO, b"k") == b"v2"
    engine.close()


def test_a_write_outside_a_batch_is_durable_while_another_threads_batch_is_open(tmp_path: Path) -> None:
    """Batches are per thread: one thread's bulk import never delays another's acknowledgement."""
    engine = open_engine(str(tmp_path / "s"))
    blobs = LocalBlobService(engine)
    with blobs.batch():
        with blobs.open_write() as inside:
            inside.write(b"in the batch")
            in_batch = inside.close()
        assert committed(engine, CHUNKS, in_batch) is None  # held back until the batch ends
        worker = threading.Thread(target=lambda: blobs.open_write().close())
        worker.start()
        worker.join()
        assert committed(engine, CHUNKS, B3Digest.of(b"")) is not None
    assert committed(engine, CHUNKS, in_batch) is not None
    blobs.close()


def test_a_long_batch_commits_early_past_the_record_bound(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setattr(records_module, "COMMIT_RECORDS", 10)
    engine = open_engine(str(tmp_path / "s"))
    with engine.batch():
        for i in range(25):
            engine.records.put(PATHINFO, [(b"%d" % i, b"v")])
        assert committed(engine, PATHINFO, b"5") == b"v"
        assert committed(engine, PATHINFO, b"24") is None
    assert committed(engine, PATHINFO, b"24") == b"v"
    engine.close()


def test_concurrent_writers_in_threads_all_land(tmp_path: Path) -> None:
    blobs = LocalBlobService(open_engine(str(tmp_path / "s")))
    results: dict[int, B3Digest] = {}

    def write(n: int) -> None:
        for i in range(40):
            with blobs.open_write() as w:
                w.write(b"thread %d blob %d " % (n, i) * (i * 500 + 1))
                results[n * 1000 + i] = w.close()

    with blobs.batch():
        threads = [threading.Thread(target=write, args=(n,)) for n in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    for key, digest in results.items():
        n, i = divmod(key, 1000)
        assert blobs.open_read(digest).read() == b"thread %d blob %d " % (n, i) * (i * 500 + 1)
    blobs.close()


@pytest.mark.parametrize("table", [CHUNKS, BLOBS], ids=["chunks", "blobs"])
def test_content_addressed_records_are_never_rewritten(tmp_path: Path, table: Table) -> None:
    engine = open_engine(str(tmp_path / "s"))
    engine.records.put(table, [(b"k" * 32, b"first")])
    engine.records.put(table, [(b"k" * 32, b"second")])
    assert committed(engine, table, b"k" * 32) == b"first"
    engine.close()


def test_a_failed_pack_write_fails_the_write_stores_nothing_and_the_next_write_works(tmp_path: Path, monkeypatch) -> None:
    blobs = LocalBlobService(open_engine(str(tmp_path / "s")))
    kept = blobs.open_write()
    kept.write(b"before the disk filled up")
    kept = kept.close()

    def no_space(name: str, data: bytes) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    put = blobs.engine.packs.store.put
    monkeypatch.setattr(blobs.engine.packs.store, "put", no_space)
    writer = blobs.open_write()
    writer.write(b"lost")
    with pytest.raises(BackendError, match="No space left"):
        writer.close()
    with pytest.raises(BackendError):  # while the disk is full, every write fails
        blobs.open_write().close()
    monkeypatch.setattr(blobs.engine.packs.store, "put", put)
    writer = blobs.open_write()  # room again: the same engine writes, no reopening
    writer.write(b"after")
    writer.close()
    assert not blobs.has(B3Digest.of(b"lost"))
    blobs.close()
    reopened = LocalBlobService(open_engine(str(tmp_path / "s")))
    assert not reopened.has(B3Digest.of(b"lost"))
    assert reopened.open_read(kept).read() == b"before the disk filled up"
    assert reopened.open_read(B3Digest.of(b"after")).read() == b"after"
    reopened.close()


def test_threads_missing_on_one_frame_decompress_it_once(tmp_path: Path) -> None:
    engine = open_engine(str(tmp_path / "s"))
    chunks = [bytes([i]) * 5000 for i in range(8)]  # small neighbours: one frame
    for data in chunks:
        engine.add_chunk(B3Digest.of(data), data)
    engine.close()
    engine = open_engine(str(tmp_path / "s"))
    reader = engine._reader
    calls = []
    real = reader._decompressed

    def slow(location):
        calls.append(location)
        time.sleep(0.2)  # long enough for every thread to miss on the frame
        return real(location)

    reader._decompressed = slow
    got: dict[int, bytes | None] = {}
    threads = [threading.Thread(target=lambda i=i: got.__setitem__(i, engine.read_chunk(B3Digest.of(chunks[i]))))
               for i in range(len(chunks))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert [got[i] for i in range(len(chunks))] == chunks
    assert len(calls) == 1
    engine.close()


def test_the_engine_knows_neither_backend_and_works_over_memory_stores() -> None:
    metadata, packs = MemoryMetadataStore(), MemoryPackStore()
    blobs = LocalBlobService(LocalEngine(metadata, packs))
    datas = [b"small", random.Random(1).randbytes(3 << 20), b""]
    digests = [put(blobs, data) for data in datas]
    blobs.close()
    reopened = LocalBlobService(LocalEngine(metadata, packs))
    assert [reopened.read_all(d) for d in digests] == datas
    stored = dict(packs.list())
    assert reopened.stored_bytes() == sum(stored.values()) > 3 << 20
    for name, size in stored.items():
        [data] = packs.read(name, [(0, size)])
        assert pack_name(data) == name
    reopened.close()


def test_full_packs_are_put_during_a_batch_and_named_only_by_its_commit() -> None:
    metadata, packs = MemoryMetadataStore(), MemoryPackStore()
    packs.pack_bytes = 64 * 1024  # every frame fills a pack
    engine = LocalEngine(metadata, packs)
    blobs = LocalBlobService(engine)
    datas = [random.Random(seed).randbytes(5 << 20) for seed in range(3)]
    with blobs.batch():
        digests = [put(blobs, data) for data in datas]
        deadline = time.monotonic() + 10  # frames are compressed and appended by worker threads
        while len(list(packs.list())) < 2 and time.monotonic() < deadline:
            time.sleep(0.01)
        assert len(list(packs.list())) >= 2  # put as they filled, before any commit
        assert list(metadata.items(packs_module.PACKS)) == []  # yet no record names them
        assert list(metadata.items(CHUNKS)) == []
        assert [blobs.read_all(d) for d in digests] == datas  # staged, put or still in memory
    assert len(list(metadata.items(packs_module.PACKS))) == len(list(packs.list()))
    assert [blobs.read_all(d) for d in digests] == datas
    blobs.close()


class CountingMetadata(MemoryMetadataStore):
    """Counts the queries of the chunks table: each is a round trip on a remote metadata store."""

    def __init__(self) -> None:
        super().__init__()
        self.chunk_queries = 0

    def get(self, table: Table, key: bytes) -> bytes | None:
        self.chunk_queries += table == CHUNKS
        return super().get(table, key)

    def get_many(self, table: Table, keys) -> list[bytes | None]:
        self.chunk_queries += table == CHUNKS
        return super().get_many(table, keys)


def test_new_chunks_are_looked_up_many_at_a_time_and_read_back_before_and_after_the_commit() -> None:
    metadata = CountingMetadata()
    engine = LocalEngine(metadata, MemoryPackStore())
    blobs = LocalBlobService(engine)
    datas = [b"small file %d" % i for i in range(2000)] + [b"small file 7"]  # one twice
    with blobs.batch():
        digests = [put(blobs, data) for data in datas]
        assert [blobs.read_all(d) for d in digests] == datas  # waiting for the lookup, or framed
    assert metadata.chunk_queries <= 2000 // 100
    assert len(list(metadata.items(CHUNKS))) == 2000
    assert [blobs.read_all(d) for d in digests] == datas
    blobs.close()


def put(blobs: LocalBlobService, data: bytes) -> B3Digest:
    with blobs.open_write() as writer:
        writer.write(data)
        return writer.close()


def test_a_writer_stores_again_what_garbage_collection_swept(tmp_path: Path) -> None:
    """A chunk and blob GC swept (kept as tombstones until their pack goes) are still read, but a
    writer of the same bytes stores them anew: the pack under the tombstones may be deleted
    before its records commit."""
    from castore.local import tombstones

    engine = open_engine(str(tmp_path / "s"))
    blobs = LocalBlobService(engine)
    data = random.Random(7).randbytes(3 << 20)
    with blobs.open_write() as writer:
        writer.write(data)
        digest = writer.close()
    chunks = [key for key, _ in engine.metadata.items(CHUNKS)]

    def sweep(table: Table, keys: list[bytes]) -> dict[bytes, bytes]:
        return {k: tombstones.encode(0, raw) for k, raw in zip(keys, engine.metadata.get_many(table, keys))}

    swept = {CHUNKS: sweep(CHUNKS, chunks), BLOBS: sweep(BLOBS, [bytes(digest)])}
    engine.metadata.commit({tombstones.tombstones(t): records for t, records in swept.items()},
                           {t: list(records) for t, records in swept.items()})
    assert blobs.has(digest)  # readers still find it through the tombstones
    with blobs.open_write() as writer:
        writer.write(data)
        assert writer.close() == digest
    assert all(committed(engine, CHUNKS, key) is not None for key in chunks)
    assert committed(engine, BLOBS, bytes(digest)) is not None
    engine.close()


def test_read_many_of_a_blob_whose_chunk_list_is_empty_says_it_is_corrupt() -> None:
    """A writer lists two chunks or more; an empty list (a damaged index) must not shift the
    chunks read after it onto the wrong blobs."""
    engine = LocalEngine(MemoryMetadataStore(), MemoryPackStore())
    blobs = LocalBlobService(engine)
    try:
        small = blobs.open_write()
        small.write(b"after")
        after = small.close()
        damaged = B3Digest.of(b"a chunked blob")
        engine.records.put(BLOBS, [(damaged, encode_chunk_list(0, []))])
        with pytest.raises(CorruptionError, match="empty"):
            list(blobs.read_many([damaged, after]))
    finally:
        blobs.close()
