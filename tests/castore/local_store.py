"""Reaching into a local store's files and records, as damage or a forger would (for tests)."""

from __future__ import annotations

import io
from pathlib import Path

from castore.digest import B3Digest
from castore.local.frames import Location
from castore.local.registry import open_engine
from castore.storage.metadata import Table
from castore.storage.packs_fs import SUFFIX


def pack_files(store: Path) -> list[Path]:
    return sorted((store / "packs").glob("*/*" + SUFFIX))


def pack_file(store: Path, pack_id: int) -> Path:
    """The file of a pack, by the number chunk records give it."""
    engine = open_engine(str(store))
    try:
        return Path(engine.packs.store.path(engine.packs.name(pack_id)))
    finally:
        engine.close()


def flip_frame_byte(store: Path, location: Location) -> None:
    """Flip a byte in the middle of the frame at `location`."""
    with open(pack_file(store, location.pack), "r+b") as f:
        f.seek(location.frame_offset + location.frame_length // 2)
        byte = f.read(1)
        f.seek(-1, io.SEEK_CUR)
        f.write(bytes([byte[0] ^ 0xFF]))


def rewrite(store: Path, table: Table, key: bytes, value: bytes | None) -> None:
    """Replace (or with None, delete) a committed record, insert-only or not."""
    engine = open_engine(str(store))
    try:
        engine.metadata.commit({} if value is None else {table: {key: value}}, {table: [key]})
    finally:
        engine.close()


def flip_byte_of_chunk(store: Path, data: bytes) -> None:
    """Corrupt the frame holding the chunk of `data` (a whole chunk) in its pack file."""
    engine = open_engine(str(store))
    try:
        record = engine.chunk_record(B3Digest.of(data))
    finally:
        engine.close()
    assert record is not None
    flip_frame_byte(store, record.location)
