"""read_many: many blobs in turn, frames read ahead by the engine's readers, verified, in order."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Iterator

import pytest

from castore.blobs.local import BLOBS, LocalBlobService
from castore.blobs.memory import MemoryBlobService
from castore.blobs.service import BlobService
from castore.digest import B3Digest
from castore.errors import CorruptionError
from castore.local.registry import open_engine

from tests.castore.local_store import flip_frame_byte
from tests.conformance.test_blobservice import put, random_bytes

MiB = 1 << 20




@pytest.fixture(params=["memory", "local"])
def blobs(request, tmp_path: Path) -> Iterator[BlobService]:
    service = MemoryBlobService() if request.param == "memory" else LocalBlobService(open_engine(str(tmp_path)))
    yield service
    service.close()


def contents() -> list[bytes]:
    """Small, empty and chunked blobs (the large one spans several frames), mixed."""
    return [b"small one", b"", random_bytes(10 * MiB + 7, seed=1), b"small two", random_bytes(300_000, seed=2),
            b"small three"]


def reading_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name.startswith("cairn-read")]


def test_each_blob_comes_whole_and_in_order_and_an_unknown_one_as_none(blobs: BlobService) -> None:
    datas = contents()
    digests = [put(blobs, d) for d in datas]
    unknown = B3Digest.of(b"never stored")
    got = [None if pieces is None else b"".join(pieces)
           for pieces in blobs.read_many([*digests[:3], unknown, *digests[3:]])]
    assert got == [*datas[:3], None, *datas[3:]]


def test_a_blob_the_consumer_leaves_unread_does_not_shift_the_next(blobs: BlobService) -> None:
    datas = contents()
    digests = [put(blobs, d) for d in datas]
    got = []
    for i, pieces in enumerate(blobs.read_many(digests)):
        if i == 2:
            next(iter(pieces))  # one piece of the large blob, then on to the next
        else:
            got.append(b"".join(pieces))
    assert got == datas[:2] + datas[3:]


def test_closing_early_leaves_nothing_reading_and_the_store_closes(blobs: BlobService) -> None:
    digests = [put(blobs, d) for d in contents()]
    many = blobs.read_many(digests)
    for i, pieces in enumerate(many):
        if i == 2:
            next(iter(pieces))
            break
    many.close()
    assert [b"".join(p) for p in blobs.read_many(digests[:2])] == contents()[:2]  # still usable
    blobs.close()
    assert reading_threads() == []


def test_the_engine_s_close_stops_and_joins_the_threads_that_read_ahead(tmp_path: Path) -> None:
    blobs = LocalBlobService(open_engine(str(tmp_path)))
    datas = contents()
    digests = [put(blobs, d) for d in datas]
    blobs.close()
    blobs = LocalBlobService(open_engine(str(tmp_path)))  # no frame cached: the readers are started
    assert [b"".join(pieces) for pieces in blobs.read_many(digests)] == datas
    started = reading_threads()
    assert started
    blobs.close()
    assert reading_threads() == [] and not any(t.is_alive() for t in started)


def test_a_corrupt_frame_of_a_chunked_blob_raises_when_its_turn_comes(tmp_path: Path) -> None:
    blobs = LocalBlobService(open_engine(str(tmp_path)))
    datas = contents()
    digests = [put(blobs, d) for d in datas]
    [chunks] = [blobs.stat(d).chunks for d in digests[2:3]]
    location = blobs.engine.chunk_record(chunks[-1].digest).location
    blobs.close()
    flip_frame_byte(tmp_path, location)  # a byte in the middle of the large blob's last frame
    blobs = LocalBlobService(open_engine(str(tmp_path)))
    many = blobs.read_many(digests)
    assert b"".join(next(many)) == datas[0]
    assert b"".join(next(many)) == datas[1]
    with pytest.raises(CorruptionError):
        b"".join(next(many))
    many.close()
    blobs.close()
    assert reading_threads() == []


def test_chunked_blobs_are_told_apart_by_their_chunk_list(tmp_path: Path) -> None:
    blobs = LocalBlobService(open_engine(str(tmp_path)))
    large = random_bytes(3 * MiB, seed=3)
    digest = put(blobs, large)
    assert blobs.engine.records.get(BLOBS, digest) is not None
    [chunk] = blobs.stat(digest).chunks[:1]
    got = [b"".join(pieces) for pieces in blobs.read_many([digest, chunk.digest])]
    assert got == [large, large[:chunk.size]]  # a chunk digest reads that chunk
    blobs.close()


def test_read_all_gives_a_whole_blob_or_none(blobs: BlobService) -> None:
    datas = contents()
    digests = [put(blobs, d) for d in datas]
    assert [blobs.read_all(d) for d in digests] == datas  # small, empty and chunked alike
    assert blobs.read_all(B3Digest.of(b"never stored")) is None
