"""Delta chunks: a chunk much like a stored one is kept as a small delta, and reads back whole."""

from __future__ import annotations

import random
from pathlib import Path

import pytest

from castore.digest import B3Digest
from castore.errors import CorruptionError
from castore.local.engine import CHUNKS, LocalEngine
from castore.local.frames import LARGE, SMALL, ChunkRecord
from castore.local.registry import open_engine

from tests.castore.local_store import flip_frame_byte


def binary_like(size: int, seed: int) -> bytes:
    """Bytes that compress about as badly as machine code: random words from a small vocabulary."""
    rng = random.Random(seed)
    words = [rng.randbytes(rng.randint(2, 8)) for _ in range(4096)]
    out = bytearray()
    while len(out) < size:
        out += rng.choice(words)
    return bytes(out[:size])


def patched(data: bytes, every: int, seed: int) -> bytes:
    """`data` with a byte changed every `every` bytes, like relocated addresses."""
    rng = random.Random(seed)
    out = bytearray(data)
    for pos in range(rng.randrange(every), len(out), every):
        out[pos] = rng.randrange(256)
    return bytes(out)


def stored_delta(engine: LocalEngine, digest: bytes) -> bool:
    record = engine.chunk_record(digest)
    assert record is not None
    return record.base is not None


@pytest.mark.parametrize("kind", [SMALL, LARGE])
def test_a_near_copy_of_a_stored_chunk_is_a_delta_and_reads_back_verified(tmp_path: Path, kind) -> None:
    engine = open_engine(str(tmp_path / "s"))
    base = binary_like(64 * 1024, seed=1)
    near = patched(base, 4096, seed=2)
    engine.add_chunk(B3Digest.of(base), base, kind)
    engine.commit()
    before = engine.stored_bytes()
    engine.add_chunk(B3Digest.of(near), near, kind)
    engine.commit()
    assert stored_delta(engine, B3Digest.of(near))
    assert not stored_delta(engine, B3Digest.of(base))
    assert engine.stored_bytes() - before < len(near) // 20
    engine.close()
    reopened = open_engine(str(tmp_path / "s"))  # nothing cached from the writes
    assert reopened.read_chunk(B3Digest.of(near)) == near
    assert reopened.chunk_length(B3Digest.of(near)) == len(near)
    reopened.close()


def test_a_chunk_the_index_names_is_no_base_once_it_is_a_delta_itself(tmp_path: Path) -> None:
    """The similarity index names chunks that were plain when noted; one written again since (GC
    swept it) may be a delta now, and a delta against it could close a cycle: it is not taken."""
    engine = open_engine(str(tmp_path / "s"))
    base = binary_like(64 * 1024, seed=1)
    near, nearer = patched(base, 4096, seed=2), patched(base, 4096, seed=5)
    for data in (base, near):
        engine.add_chunk(B3Digest.of(data), data, SMALL)
        engine.commit()
    assert stored_delta(engine, B3Digest.of(near))
    assert engine._delta_against(B3Digest.of(near), nearer, SMALL) is None  # a delta: refused as a base
    assert engine._delta_against(B3Digest.of(base), nearer, SMALL) is not None  # a plain chunk: taken
    engine.close()


def test_a_chunk_pending_as_a_delta_is_no_base_either(tmp_path: Path) -> None:
    engine = open_engine(str(tmp_path / "s"))
    base = binary_like(64 * 1024, seed=1)
    near, nearer = patched(base, 4096, seed=2), patched(base, 4096, seed=5)
    with engine.batch():  # nothing committed: both are pending when the third is weighed
        engine.add_chunk(B3Digest.of(base), base, SMALL)
        engine._check_unchecked()
        engine.add_chunk(B3Digest.of(near), near, SMALL)
        engine._check_unchecked()
        assert engine._frames.pending_base(B3Digest.of(near)) == B3Digest.of(base)
        assert engine._delta_against(B3Digest.of(near), nearer, SMALL) is None
        assert engine._delta_against(B3Digest.of(base), nearer, SMALL) is not None
    assert stored_delta(engine, B3Digest.of(near)) and engine.read_chunk(B3Digest.of(near)) == near
    engine.close()


def test_unrelated_and_tiny_chunks_are_stored_plain(tmp_path: Path) -> None:
    engine = open_engine(str(tmp_path / "s"))
    chunks = [binary_like(64 * 1024, seed=s) for s in (3, 4)] + [b"x" * 100, b"x" * 99 + b"y"]
    for data in chunks:
        engine.add_chunk(B3Digest.of(data), data, LARGE)
        engine.commit()
    assert not any(stored_delta(engine, B3Digest.of(data)) for data in chunks)
    engine.close()


def test_a_delta_whose_base_is_damaged_is_reported_not_returned(tmp_path: Path) -> None:
    engine = open_engine(str(tmp_path / "s"))
    base = binary_like(64 * 1024, seed=5)
    near = patched(base, 4096, seed=6)
    for data in (base, near):
        engine.add_chunk(B3Digest.of(data), data, LARGE)
        engine.commit()
    location = engine.chunk_record(B3Digest.of(base)).location
    engine.close()
    flip_frame_byte(tmp_path / "s", location)
    reopened = open_engine(str(tmp_path / "s"))
    with pytest.raises(CorruptionError):
        reopened.read_chunk(B3Digest.of(near))
    # A new near copy is still stored (plain: its would-be base does not read).
    other = patched(base, 4096, seed=7)
    reopened.add_chunk(B3Digest.of(other), other, LARGE)
    reopened.commit()
    assert reopened.read_chunk(B3Digest.of(other)) == other
    reopened.close()


def test_a_cycle_of_deltas_is_reported_as_corruption(tmp_path: Path) -> None:
    engine = open_engine(str(tmp_path / "s"))
    base = binary_like(64 * 1024, seed=8)
    near = patched(base, 4096, seed=9)
    for data in (base, near):
        engine.add_chunk(B3Digest.of(data), data, LARGE)
        engine.commit()
    record = engine.chunk_record(B3Digest.of(near))
    assert record.base == B3Digest.of(base)
    # Forge the base into a delta against the chunk that refers to it: a cycle.
    forged = ChunkRecord(record.location, len(base), bytes(B3Digest.of(near)))
    base_key = bytes(B3Digest.of(base))
    engine.metadata.commit({CHUNKS: {base_key: forged.encode()}}, {CHUNKS: [base_key]})
    with pytest.raises(CorruptionError, match="deep"):
        engine.read_chunk(B3Digest.of(near))
    engine.close()
