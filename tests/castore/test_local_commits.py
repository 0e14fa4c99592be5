"""The commit policy: early commits of a long batch leave the open pack open (packs are put full,
one billed request each on object storage), records naming frames of a pack not yet put wait
for it, and nothing acknowledged is lost when a writer dies between an early commit and the
seal or when a commit fails under another thread's feet."""

from __future__ import annotations

import threading

import pytest

from castore.blobs.local import BLOBS, LocalBlobService, decode_chunk_list
from castore.errors import BackendError
from castore.local import records as records_module
from castore.local.engine import CHUNKS, LocalEngine
from castore.local.frames import ChunkRecord
from castore.local.packs import PACKS, PackRow, pack_number
from castore.storage.metadata import Table
from castore.storage.metadata_memory import MemoryMetadataStore
from castore.storage.packs_memory import MemoryPackStore
from tests.conformance.test_blobservice import put, random_bytes

PACK_BYTES = 9 << 20
"""Four frames of 2 MiB of random bytes fit, five do not."""


class CountingPacks(MemoryPackStore):
    """Counts the reads that reach the store (each a GET on object storage)."""

    pack_bytes = PACK_BYTES

    def __init__(self) -> None:
        super().__init__()
        self.reads = 0

    def read(self, name, ranges):
        self.reads += 1
        return super().read(name, ranges)


def check_committed_records_name_durable_data(metadata: MemoryMetadataStore, packs: MemoryPackStore) -> None:
    """What a crash leaves: every committed record names data that is in a put pack."""
    stored = dict(packs.list())
    for digest, raw in metadata.items(CHUNKS):
        row = metadata.get(PACKS, pack_number(ChunkRecord.decode(raw).location.pack))
        assert row is not None, f"chunk {digest.hex()} names a pack with no row"
        assert PackRow.decode(row).name in stored
    for digest, raw in metadata.items(BLOBS):
        for chunk in decode_chunk_list(digest, raw):
            assert metadata.get(CHUNKS, bytes(chunk.digest)) is not None, f"blob {digest.hex()} names a missing chunk"


def test_a_batch_far_larger_than_the_commit_bound_puts_full_packs_only(monkeypatch) -> None:
    monkeypatch.setattr(records_module, "COMMIT_BYTES", 1 << 20)  # an early commit every MiB
    metadata, packs = MemoryMetadataStore(), CountingPacks()
    blobs = LocalBlobService(LocalEngine(metadata, packs))
    datas = [random_bytes(2 << 20, seed) for seed in range(15)]  # each commit early: a frame each
    with blobs.batch():
        digests = [put(blobs, data) for data in datas]
        assert list(metadata.items(CHUNKS)) != []  # early commits took the chunks of packs put
        check_committed_records_name_durable_data(metadata, packs)
    sizes = sorted(size for _, size in packs.list())
    assert len(sizes) == 4  # four frames to a pack: the last one holds three
    assert all(size > 8 << 20 for size in sizes[1:])
    assert len(list(metadata.items(PACKS))) == len(sizes)
    assert [blobs.read_all(d) for d in digests] == datas
    blobs.close()


def test_an_early_commit_with_many_records_waiting_puts_the_open_pack(monkeypatch) -> None:
    """Records held for the open pack are bounded: past HELD_RECORDS an early commit seals it."""
    monkeypatch.setattr(records_module, "COMMIT_RECORDS", 10)
    monkeypatch.setattr(records_module, "HELD_RECORDS", 50)
    metadata, packs = MemoryMetadataStore(), MemoryPackStore()
    blobs = LocalBlobService(LocalEngine(metadata, packs))
    with blobs.batch():
        for i in range(300):
            blobs.engine.records.put(Table("names"), [(b"%d" % i, bytes(put(blobs, b"small file %d" % i)))])
        assert len(list(metadata.items(CHUNKS))) >= 100
        check_committed_records_name_durable_data(metadata, packs)
    blobs.close()


def test_a_writer_dying_between_an_early_commit_and_the_seal_loses_nothing_acknowledged(monkeypatch) -> None:
    monkeypatch.setattr(records_module, "COMMIT_BYTES", 1 << 20)
    metadata, packs = MemoryMetadataStore(), CountingPacks()
    engine = LocalEngine(metadata, packs)
    blobs = LocalBlobService(engine)
    acknowledged = {put(blobs, data): data for data in (b"acknowledged", random_bytes(5 << 20, 99))}
    with blobs.batch():
        in_batch = {put(blobs, data): data for data in (random_bytes(3 << 20, seed) for seed in range(4))}
        in_batch[put(blobs, b"a small file in the open pack")] = b"a small file in the open pack"
        engine._frames.flush()  # every frame in a pack: the open one holds the last of them
        assert engine.packs._open is not None
        # The writer dies here: nothing more is committed, its open pack is never put.
        reopened = LocalBlobService(LocalEngine(metadata, packs))
        check_committed_records_name_durable_data(metadata, packs)
        assert {d: reopened.read_all(d) for d in acknowledged} == acknowledged
        for digest, data in in_batch.items():  # unacknowledged: there whole, or not at all
            assert reopened.read_all(digest) in (data, None)
        assert list(reopened.verify_all()) == []
        reopened.close()
    blobs.close()


class FailingCommit(MemoryMetadataStore):
    """A metadata store whose next commit waits for `go`, then fails (a connection lost mid-commit)."""

    def __init__(self) -> None:
        super().__init__()
        self.fail_next = False
        self.failing = threading.Event()
        self.go = threading.Event()

    def commit(self, puts, deletes={}):
        if self.fail_next:
            self.fail_next = False
            self.failing.set()
            self.go.wait()
            raise BackendError("the metadata store went away")
        super().commit(puts, deletes)


def test_a_failed_commit_leaves_no_record_naming_a_chunk_another_writer_skipped() -> None:
    """Issue 14 defect 5: writer B skips chunks it finds in writer A's commit; A's commit fails;
    B's blob, which names them, must not be recorded (B's write fails instead)."""
    metadata, packs = FailingCommit(), MemoryPackStore()
    blobs = LocalBlobService(LocalEngine(metadata, packs))
    shared = random_bytes(1 << 20, 5)  # B's blob starts with A's: the same chunks, but its last
    metadata.fail_next = True
    errors: list[BaseException] = []

    def writer_a() -> None:
        try:
            put(blobs, shared)
        except BackendError as e:
            errors.append(e)

    a = threading.Thread(target=writer_a)
    a.start()
    assert metadata.failing.wait(30)  # A's records are committing
    with pytest.raises(BackendError, match="write it again"):
        with blobs.batch():  # writer B
            with blobs.open_write() as writer:
                writer.write(shared)  # its chunks are looked up once 512 KiB wait (CHECK_BYTES): found
                metadata.go.set()
                a.join()  # A's commit failed
                writer.write(b"and more")
                b_digest = writer.close()
    assert len(errors) == 1
    check_committed_records_name_durable_data(metadata, packs)
    reopened = LocalBlobService(LocalEngine(metadata, packs))
    assert not reopened.has(b_digest)
    assert put(reopened, shared + b"and more") == b_digest  # written again, it is stored whole
    assert reopened.read_all(b_digest) == shared + b"and more"
    reopened.close()
    blobs.close()


def test_packs_put_last_are_read_from_memory_not_from_the_store() -> None:
    """A delta's base is mostly a chunk written shortly before: reading it back would be a GET."""
    packs = CountingPacks()
    engine = LocalEngine(MemoryMetadataStore(), packs)
    blobs = LocalBlobService(engine)
    datas = [b"file %d " % i * 1000 for i in range(20)]
    digests = [put(blobs, data) for data in datas]  # a commit, and a small pack, each
    assert len(list(packs.list())) == 20
    engine._reader.clear()  # no decompressed frame cached
    assert [blobs.read_all(d) for d in digests] == datas
    assert packs.reads == 0
    blobs.close()


class BlockingPacks(MemoryPackStore):
    """A pack store whose next put, once `block` is set, waits for `proceed`."""

    pack_bytes = PACK_BYTES

    def __init__(self) -> None:
        super().__init__()
        self.block = False
        self.putting = threading.Event()
        self.proceed = threading.Event()

    def put(self, name, data):
        if self.block:
            self.block = False
            self.putting.set()
            self.proceed.wait()
        super().put(name, data)


@pytest.mark.parametrize("named", ["sealed", "open"])
def test_a_pack_put_while_an_early_commit_seals_does_not_hold_its_records_forever(monkeypatch, named) -> None:
    """The early commit's seal names the packs not put yet (one being put, or the open one);
    another writer's frame gets that pack put before the commit holds its records for it:
    they must not wait for it."""
    monkeypatch.setattr(records_module, "COMMIT_BYTES", 1 << 40)  # early commits only when asked
    metadata, packs = MemoryMetadataStore(), BlockingPacks()
    engine = LocalEngine(metadata, packs)
    blobs = LocalBlobService(engine)
    flush, seal = engine._frames.flush, engine.records.seal
    datas = [random_bytes(2 << 20, seed) for seed in range(4)]  # two LARGE frames: the open pack nearly full
    other = threading.Thread(target=put, args=(blobs, random_bytes(6 << 20, 9)))  # a 4 MiB frame on the way

    def flush_then_another_writer_fills_the_pack() -> None:
        flush()
        packs.block = True
        other.start()  # its frame does not fit: the open pack is sealed, and its put waits
        assert packs.putting.wait(30)

    def seal_then_that_pack_is_put(final: bool):
        gates = seal(final)
        with engine.packs._cond:
            filled = {engine.packs._open.number} if named == "open" else engine.packs._sealing.keys() & gates
        assert filled
        if named == "open":
            other.start()  # its frame does not fit: the open pack is sealed and put
        packs.proceed.set()
        with engine.packs._cond:
            engine.packs._cond.wait_for(lambda: not (filled & engine.packs._sealing.keys() or engine.packs._open
                                                     and engine.packs._open.number in filled))
        return gates

    with blobs.batch():
        digests = [put(blobs, data) for data in datas]
        if named == "sealed":
            engine._frames.flush = flush_then_another_writer_fills_the_pack
        engine.records.seal = seal_then_that_pack_is_put
        try:
            engine.records.commit(final=False)
        finally:
            engine._frames.flush, engine.records.seal = flush, seal
            packs.proceed.set()
        assert all(held.gates for held in engine.records._held)  # none waits for a pack already put
        other.join()  # its commit puts the pack its frame went to
        reopened = LocalBlobService(LocalEngine(metadata, packs))
        assert [reopened.read_all(d) for d in digests] == datas  # committed with the other's
        reopened.close()
    blobs.close()
