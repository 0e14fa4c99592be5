"""Tombstones: chunk, blob and directory-row records garbage collection swept, set aside rather than dropped.

A writer that found a chunk or blob present just before GC swept it may still commit a record
naming it (it skipped writing the data). So a swept record moves to its table's tombstones,
with the time it was swept, and stays readable through them (records.py falls back to them)
until its pack is deleted; the next GC puts back any that something kept names again.
A directory's row follows its chunk: swept with it, put back with it, and dropped when the
chunk's tombstone goes (bytes stored again later as a blob must not read as a directory).
"""

from __future__ import annotations

import struct

from castore.storage.metadata import Table

SWEPT = frozenset({"chunks", "blobs", "directories"})
"""The tables whose swept records get tombstones."""
_TIME = struct.Struct(">Q")


def tombstones(table: Table) -> Table:
    """The tombstones of a swept table."""
    return Table(f"gc-dead-{table.name}")


def encode(swept_at: int, value: bytes) -> bytes:
    return _TIME.pack(swept_at) + value


def decode(raw: bytes) -> tuple[int, bytes]:
    """(when it was swept, in seconds since the epoch; the record as it was)."""
    return _TIME.unpack_from(raw)[0], raw[_TIME.size:]
