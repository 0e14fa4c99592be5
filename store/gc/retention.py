"""Retention: when each path was added and last served, for `cairn gc --keep-since`.

Adding a path records its time in the commit that adds it. Serving one (narinfo or NAR over
HTTP, a gRPC get, a mount's lookup: every PathInfoService get of the embedded store) must not
cost a write per read: `Touches` keeps the paths served in memory and writes them at most
every FLUSH_SECONDS, and when the service closes (unless their stamps are that recent already).
A process killed loses at most that much.
"""

from __future__ import annotations

import struct
import threading
import time
from typing import Iterator

from castore.errors import BackendError
from castore.local.records import Records
from castore.storage.metadata import Table

ADDED = Table("gc-added")
"""20-byte store path digest -> when the path was last put (u64 seconds)."""
SERVED = Table("gc-served")
"""20-byte store path digest -> when it was last served, to within FLUSH_SECONDS."""
FLUSH_SECONDS = 60.0
_TIME = struct.Struct(">Q")


def stamp(when: float | None = None) -> bytes:
    return _TIME.pack(int(time.time() if when is None else when))


def unstamp(raw: bytes) -> int:
    return _TIME.unpack(raw)[0]


def since(records: Records, table: Table, cutoff: float) -> Iterator[bytes]:
    """Path digests whose time in `table` (ADDED or SERVED) is at or after `cutoff`."""
    for digest, raw in records.items(table):
        if _TIME.unpack(raw)[0] >= cutoff:
            yield digest


def is_young(records: Records, digest: bytes, cutoff: float) -> bool:
    raw = records.get(ADDED, digest)
    return raw is not None and _TIME.unpack(raw)[0] >= cutoff


class Touches:
    """Paths served since the last flush, written at most every `interval` seconds."""

    def __init__(self, records: Records, interval: float = FLUSH_SECONDS) -> None:
        self._records = records
        self._interval = interval
        self._lock = threading.Lock()
        self._touched: set[bytes] = set()
        self._flushed = time.monotonic()

    def touch(self, digest: bytes) -> None:
        if self._records.metadata.read_only:
            return  # a read-only store is served all the same; it cannot remember when
        with self._lock:
            self._touched.add(bytes(digest))
            due = time.monotonic() - self._flushed >= self._interval
        if due:
            self.flush()

    def flush(self) -> None:
        """Write the paths served since the last flush, but those whose stamp is already within
        `interval` (what a stamp is precise to): a path read again and again, each time by a new
        process (`cairn dump`, a script's path-info), costs no commit and sync each time (about
        as long as dumping Django's NAR from the frame cache)."""
        with self._lock:
            touched, self._touched = self._touched, set()
            self._flushed = time.monotonic()
        if touched:
            when = time.time()
            touched = {d for d, raw in zip(touched, self._records.get_many(SERVED, list(touched)))
                       if raw is None or unstamp(raw) < when - self._interval}
        if touched:
            now = stamp(when)
            try:
                self._records.put(SERVED, ((d, now) for d in touched))
            except BackendError as e:  # a full disk must not fail the reads: try again next time
                import logging  # only this warning logs: a dump need not load logging

                with self._lock:
                    self._touched |= touched
                logging.getLogger(__name__).warning("could not record when %d paths were served: %s", len(touched), e)
