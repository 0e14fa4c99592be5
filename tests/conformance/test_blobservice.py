"""The BlobService contract (castore/blobs/service.py, SPEC 2-3), on every backend."""

from __future__ import annotations

import gc
import io
import random
import threading
from pathlib import Path

import pytest

from castore.blobs.service import BlobService
from castore.digest import EMPTY_DIGEST, B3Digest
from tests.conformance.backends import Backend

KiB, MiB = 1 << 10, 1 << 20
SIZES = [0, 1, 1000,
         16 * KiB - 1, 16 * KiB, 16 * KiB + 1, 256 * KiB + 1,  # the local store's chunk size bounds
         MiB - 1, MiB, MiB + 1,  # gRPC's message size
         3 * MiB + 5, 20 * MiB]


def random_bytes(n: int, seed: int = 0) -> bytes:
    return random.Random(seed).randbytes(n)


def put(blobs: BlobService, data: bytes, piece: int = 100_000) -> B3Digest:
    """Write in pieces that line up with nothing a backend cuts at."""
    with blobs.open_write() as writer:
        for i in range(0, len(data), piece):
            writer.write(memoryview(data)[i:i + piece])
        return writer.close()


def read(blobs: BlobService, digest: B3Digest) -> bytes:
    reader = blobs.open_read(digest)
    assert reader is not None
    with reader:
        return reader.read()


@pytest.mark.parametrize("size", SIZES)
def test_blob_round_trips_with_its_blake3_digest_and_size(blobs: BlobService, size: int) -> None:
    data = random_bytes(size, seed=size)
    digest = put(blobs, data)
    assert digest == B3Digest.of(data)
    assert blobs.has(digest)
    assert blobs.stat(digest).size == size
    assert read(blobs, digest) == data
    assert blobs.read_all(digest) == data


def test_empty_blob_has_the_empty_digest(blobs: BlobService) -> None:
    assert put(blobs, b"") == EMPTY_DIGEST
    assert blobs.stat(EMPTY_DIGEST).size == 0
    assert read(blobs, EMPTY_DIGEST) == b""
    assert blobs.read_all(EMPTY_DIGEST) == b""


def test_unknown_blob_is_absent_not_an_error(blobs: BlobService) -> None:
    unknown = B3Digest.of(b"never stored")
    assert not blobs.has(unknown)
    assert blobs.stat(unknown) is None
    assert blobs.open_read(unknown) is None
    assert blobs.read_all(unknown) is None
    assert list(blobs.read_many([unknown])) == [None]


def test_has_many_answers_as_has_for_small_chunked_unknown_and_repeated_blobs(blobs: BlobService) -> None:
    small, chunked = put(blobs, b"a small blob"), put(blobs, random_bytes(3 * MiB + 5, seed=7))
    unknown = B3Digest.of(b"never stored")
    digests = [small, unknown, chunked, small, unknown]
    assert blobs.has_many(digests) == [blobs.has(d) for d in digests] == [True, False, True, True, False]
    assert blobs.has_many([]) == []


def test_chunk_list_covers_the_blob_and_each_chunk_reads_alone(blobs: BlobService) -> None:
    """A backend that reports chunks (the local store) lists them in order; each opens by its digest."""
    data = random_bytes(3 * MiB, seed=9)
    stat = blobs.stat(put(blobs, data))
    if not stat.chunks:  # stored as one piece
        return
    assert len(stat.chunks) > 1
    assert sum(c.size for c in stat.chunks) == stat.size == len(data)
    offset = 0
    for chunk in stat.chunks:
        piece = data[offset:offset + chunk.size]
        assert chunk.digest == B3Digest.of(piece)
        assert blobs.has(chunk.digest)
        assert blobs.stat(chunk.digest).size == chunk.size
        assert read(blobs, chunk.digest) == piece
        offset += chunk.size


def read_fully(reader: io.RawIOBase, n: int) -> bytes:
    """Up to `n` bytes, reading again after a short read; each read is non-empty before the end."""
    got = b""
    while len(got) < n and (piece := reader.read(n - len(got))):
        got += piece
    return got


def test_reader_seeks_forward_backward_and_from_the_end(blobs: BlobService) -> None:
    data = random_bytes(6 * MiB + 123, seed=6)
    digest = put(blobs, data)
    with blobs.open_read(digest) as reader:
        assert reader.seekable()
        for pos, n in [(5 * MiB, 1000), (10, 20), (MiB - 5, 10), (0, 3 * MiB), (len(data) - 4, 100)]:
            assert reader.seek(pos) == pos
            got = read_fully(reader, n)
            assert got == data[pos:pos + n]
            assert reader.tell() == pos + len(got)
        assert reader.seek(-7, io.SEEK_END) == len(data) - 7
        assert reader.read() == data[-7:]
        assert reader.read(5) == b""
        reader.seek(3)
        assert reader.seek(4, io.SEEK_CUR) == 7
        assert reader.read(4) == data[7:11]
        assert reader.seek(len(data) + 10) == len(data) + 10
        assert reader.read(1) == b""


def test_random_seeks_and_reads_match_the_data(blobs: BlobService) -> None:
    """Each read returns what follows the position; a raw reader may return fewer bytes than
    asked (the gRPC one stops at a message boundary), never none before the end."""
    data = random_bytes(4 * MiB + 123, seed=6)
    digest = put(blobs, data)
    rnd = random.Random(7)
    with blobs.open_read(digest) as reader:
        assert reader.readable() and reader.seekable()
        for _ in range(200):
            pos = rnd.randrange(len(data) + 10)
            n = rnd.choice([0, 1, 100, 4096, 70_000, 300_000])
            assert reader.seek(pos) == pos
            assert read_fully(reader, n) == data[pos:pos + n]
            assert reader.tell() == min(len(data), pos + n) if pos < len(data) else pos
        assert reader.seek(-10, io.SEEK_END) == len(data) - 10
        buffer = bytearray(50)
        assert reader.readinto(buffer) == 10
        assert bytes(buffer[:10]) == data[-10:]
        reader.seek(1000)
        reader.seek(500, io.SEEK_CUR)
        assert reader.read(5) == data[1500:1505]
        with pytest.raises(ValueError):
            reader.seek(-1)


def test_reader_works_under_a_buffered_reader(blobs: BlobService) -> None:
    data = random_bytes(2 * MiB + 1, seed=2)
    digest = put(blobs, data)
    with io.BufferedReader(blobs.open_read(digest)) as reader:
        assert reader.read(10) == data[:10]
        reader.seek(MiB)
        assert reader.read() == data[MiB:]
    with io.BufferedReader(blobs.open_read(digest)) as reader:
        reader.seek(12345)
        assert reader.read(100) == data[12345:12445]
        assert reader.read() == data[12445:]


def test_read_many_yields_each_blob_in_the_order_asked_and_none_for_unknown(blobs: BlobService) -> None:
    data = [random_bytes(n, seed=n) for n in (10, 3 * MiB + 1, 0, 70_000)]
    digests = [put(blobs, d) for d in data]
    unknown = B3Digest.of(b"never stored")
    asked = [digests[1], unknown, digests[0], digests[3], digests[1], digests[2], unknown]
    expected = [data[1], None, data[0], data[3], data[1], data[2], None]
    got = [None if pieces is None else b"".join(pieces) for pieces in blobs.read_many(asked)]
    assert got == expected
    assert list(blobs.read_many([])) == []


def test_aborted_writer_leaves_nothing_visible(blobs: BlobService) -> None:
    data = [random_bytes(3 * MiB, seed=n) for n in (3, 4, 5)]
    with pytest.raises(KeyError):
        with blobs.open_write() as writer:
            writer.write(data[0])
            raise KeyError("caller gave up")
    writer = blobs.open_write()
    writer.write(data[1])
    writer.abort()
    writer = blobs.open_write()
    writer.write(data[2])
    del writer  # dropped without close()
    gc.collect()
    for digest in map(B3Digest.of, data):
        assert not blobs.has(digest)
        assert blobs.stat(digest) is None
        assert blobs.open_read(digest) is None


def test_concurrent_writers_of_the_same_blob_all_get_its_digest(blobs: BlobService) -> None:
    data = random_bytes(2 * MiB + 7, seed=12)
    writers = 6
    start = threading.Barrier(writers)
    digests: list[B3Digest] = []
    errors: list[BaseException] = []

    def write(piece: int) -> None:
        try:
            start.wait()
            digests.append(put(blobs, data, piece))
        except BaseException as e:  # reported by the main thread
            errors.append(e)

    threads = [threading.Thread(target=write, args=(10_000 + 77_777 * i,)) for i in range(writers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert digests == [B3Digest.of(data)] * writers
    assert blobs.stat(digests[0]).size == len(data)
    assert read(blobs, digests[0]) == data


def test_writes_in_a_batch_are_readable_before_it_ends(blobs: BlobService) -> None:
    data = [random_bytes(n, seed=n) for n in (10, 5000, 3 * MiB)]
    with blobs.batch():
        digests = [put(blobs, d) for d in data]
        assert [read(blobs, d) for d in digests] == data
        with blobs.batch():  # re-entrant
            nested = put(blobs, b"nested")
            assert read(blobs, nested) == b"nested"
    assert [read(blobs, d) for d in digests + [nested]] == data + [b"nested"]


def test_blobs_survive_closing_and_reopening(durable: Backend, tmp_path: Path) -> None:
    data = random_bytes(2 * MiB, seed=10)
    with durable.open(tmp_path) as store:
        digests = [put(store.castore.blobs, data), put(store.castore.blobs, b"tiny")]
    with durable.open(tmp_path) as store:
        assert read(store.castore.blobs, digests[0]) == data
        assert read(store.castore.blobs, digests[1]) == b"tiny"


def test_batched_writes_are_durable_once_the_outermost_batch_ends(durable: Backend, tmp_path: Path) -> None:
    data = [random_bytes(n, seed=n) for n in (10, 5000, 3 * MiB)]
    with durable.open(tmp_path) as store:
        blobs = store.castore.blobs
        with blobs.batch():
            digests = [put(blobs, d) for d in data]
            with blobs.batch():  # only the outermost exit commits
                digests.append(put(blobs, b"nested"))
    with durable.open(tmp_path) as store:
        assert [read(store.castore.blobs, d) for d in digests] == data + [b"nested"]


@pytest.mark.slow
def test_50_mib_blob_streams_through_writer_and_reader(blobs: BlobService) -> None:
    data = random_bytes(50 * MiB, seed=50)
    digest = put(blobs, data, piece=3 * MiB + 1)
    assert digest == B3Digest.of(data)
    with blobs.open_read(digest) as reader:
        got = bytearray()
        while piece := reader.read(2 * MiB - 3):
            got += piece
    assert got == data
    assert blobs.stat(digest).size == len(data)
