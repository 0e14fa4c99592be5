"""The local blob backend's own behaviour: chunk lists, dedup, whole reads at any seek, corruption,
the recorded chunking; the BlobService contract is in tests/conformance/test_blobservice.py."""

from __future__ import annotations

import io
import os
import random
import re
from pathlib import Path
from typing import Iterator

import pytest

from castore.blobs.local import LocalBlobService
from castore.digest import B3Digest
from castore.errors import CorruptionError
from castore.local.chunker import DEFAULT_PARAMS
from castore.local.engine import CHUNKS, META, StoreFormatError
from castore.local.frames import Location
from castore.local.registry import open_engine
from tests.conformance.test_blobservice import put, random_bytes
from tests.conformance.test_blobservice import read as read_all
from tests.castore.local_store import flip_frame_byte, pack_file, pack_files, rewrite

MiB = 1 << 20
MIN = DEFAULT_PARAMS.min_size


@pytest.fixture
def store_path(tmp_path: Path) -> Path:
    return tmp_path / "store"


@pytest.fixture
def blobs(store_path: Path) -> Iterator[LocalBlobService]:
    service = LocalBlobService(open_engine(str(store_path)))
    yield service
    service.close()


def test_small_blobs_are_one_piece_and_large_ones_list_chunks_summing_to_size(blobs: LocalBlobService) -> None:
    small = put(blobs, random_bytes(MIN))
    assert blobs.stat(small).chunks == ()
    data = random_bytes(20 * MiB, seed=3)
    stat = blobs.stat(put(blobs, data))
    assert len(stat.chunks) > 100
    assert sum(c.size for c in stat.chunks) == stat.size == len(data)
    offset = 0
    for chunk in stat.chunks:
        assert chunk.digest == B3Digest.of(data[offset:offset + chunk.size])
        offset += chunk.size


def test_same_data_twice_is_stored_once(blobs: LocalBlobService, store_path: Path) -> None:
    data = random_bytes(5 * MiB, seed=4)
    small = random_bytes(1000, seed=5)
    first = (put(blobs, data), put(blobs, small))
    stored = blobs.stored_bytes()
    assert stored > 5 * MiB  # random data does not compress
    assert (put(blobs, data, piece=77_777), put(blobs, small)) == first
    # A blob sharing most chunks with the first adds only the chunks that differ.
    put(blobs, data[:4 * MiB] + b"changed tail" + data[4 * MiB:])
    assert blobs.stored_bytes() < stored + 2 * DEFAULT_PARAMS.max_size + 1000
    assert sum(p.stat().st_size for p in pack_files(store_path)) == blobs.stored_bytes()


def test_random_seeks_and_reads_match_the_data(blobs: LocalBlobService) -> None:
    data = random_bytes(4 * MiB + 123, seed=6)
    digest = put(blobs, data)
    rnd = random.Random(7)
    reader = blobs.open_read(digest)
    assert reader.readable() and reader.seekable()
    for _ in range(200):
        pos = rnd.randrange(len(data) + 10)
        n = rnd.choice([0, 1, 100, 4096, 70_000, 300_000])
        assert reader.seek(pos) == pos
        assert reader.read(n) == data[pos:pos + n]
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


def test_flipped_bytes_in_a_pack_raise_corruption_and_clean_chunks_still_read(
        blobs: LocalBlobService, store_path: Path) -> None:
    # Each write outside a batch ends its frame, so the blobs live in separate frames.
    victim = random_bytes(10_000, seed=12)
    clean = [random_bytes(10_000, seed=s) for s in (13, 14)]
    before = put(blobs, clean[0])
    target = put(blobs, victim)
    after = put(blobs, clean[1])
    flip_frame_byte(store_path, blobs.engine.chunk_record(target).location)
    # Fresh engine: nothing cached from the writes.
    blobs.close()
    reopened = LocalBlobService(open_engine(str(store_path)))
    with pytest.raises(CorruptionError, match=re.escape(str(target))):
        read_all(reopened, target)
    assert read_all(reopened, before) == clean[0]
    assert read_all(reopened, after) == clean[1]
    reopened.close()


def test_a_chunk_whose_bytes_do_not_match_its_digest_is_never_returned(
        blobs: LocalBlobService, store_path: Path) -> None:
    # Same length, valid zstd, wrong content: only the BLAKE3 check can notice.
    import zstandard

    data = b"a" * 1000
    digest = put(blobs, data)
    location = blobs.engine.chunk_record(digest).location
    forged = zstandard.ZstdCompressor(level=5).compress(b"b" * 1000)
    blobs.close()
    with open(pack_file(store_path, location.pack), "ab") as f:
        offset = f.tell()
        f.write(forged)
    rewrite(store_path, CHUNKS, digest, Location(location.pack, offset, len(forged), 0, 1000).encode())
    reopened = LocalBlobService(open_engine(str(store_path)))
    with pytest.raises(CorruptionError, match="does not match its digest"):
        read_all(reopened, digest)
    reopened.close()


def test_a_store_with_other_chunking_parameters_is_refused(store_path: Path) -> None:
    open_engine(str(store_path)).close()
    rewrite(store_path, META, b"chunking", b"fastcdc-cy-gear/1/2/3")
    with pytest.raises(StoreFormatError, match="chunking"):
        open_engine(str(store_path))


def test_stored_bytes_counts_pack_files(blobs: LocalBlobService, store_path: Path) -> None:
    assert blobs.stored_bytes() == 0
    put(blobs, random_bytes(100_000))
    assert blobs.stored_bytes() == sum(os.path.getsize(p) for p in pack_files(store_path)) > 100_000
