"""The metadata store: every record the layers keep, in named tables of bytes -> bytes.

Chunk locations, blob chunk lists, pack names, directories' and path infos' records, the
NAR-hash index: each layer declares its tables (a `Table` value) next to the code that owns
them, and the store knows nothing of what they mean. Writes are whole commits: one atomic,
durable transaction. The store does not know the rule "data durable before any record
naming it"; its callers keep it by putting data before the commit that names it.

Keys are non-empty. Nothing here exposes cursors, buffers or transactions, so a SQL or a
remote backend implements it as easily as LMDB.
"""

from __future__ import annotations

import contextlib
import time
from abc import ABC, abstractmethod
from typing import ContextManager, Iterable, Iterator, Mapping, NamedTuple, Sequence

PAGE = 10_000
"""Records read per scan when walking a table: no transaction stays open while the caller works."""
LOCK_POLL_MAX = 0.02
"""Seconds between two tries of a lock waited for, at most."""


class Table(NamedTuple):
    """A named table. An insert-only table keeps the first value written for a key: its value
    is fixed by the key (chunks, blobs), or must not move once others rely on it (similar)."""

    name: str
    insert_only: bool = False


class MetadataStore(ABC):
    read_only: bool = False
    """Whether this store can only be read (a read-only file system): writes raise BackendError,
    and what only records use (when a path was served) is not kept."""

    @abstractmethod
    def get(self, table: Table, key: bytes) -> bytes | None:
        """The committed value of `key`, or None."""

    @abstractmethod
    def get_many(self, table: Table, keys: Sequence[bytes]) -> list[bytes | None]:
        """The values of many keys, read in one transaction (one consistent view)."""

    @abstractmethod
    def scan(self, table: Table, after: bytes = b"", limit: int = PAGE) -> list[tuple[bytes, bytes]]:
        """One page: up to `limit` records whose keys are greater than `after`, in key order."""

    def items(self, table: Table) -> Iterator[tuple[bytes, bytes]]:
        """Every committed record of `table` in key order, read a page at a time."""
        after = b""
        while True:
            page = self.scan(table, after, PAGE)
            yield from page
            if len(page) < PAGE:
                return
            after = page[-1][0]

    @abstractmethod
    def commit(self, puts: Mapping[Table, Mapping[bytes, bytes]],
               deletes: Mapping[Table, Iterable[bytes]] = {}) -> None:
        """Write every put and delete in one atomic transaction, durable on return. Deletes
        apply first; a put into an insert-only table leaves an existing value as it is."""

    @abstractmethod
    def next_id(self, counter: str) -> int:
        """A number this counter never returned before, to any process, even across crashes."""

    @abstractmethod
    def try_lock(self, name: str) -> ContextManager[bool]:
        """A lock held by at most one holder, in any process, for the length of the `with`:
        it yields whether this caller got it (it never waits). For work that must run once per
        store at a time (garbage collection); a holder that dies releases it."""

    @contextlib.contextmanager
    def lock(self, name: str) -> Iterator[None]:
        """try_lock's lock, waited for: for a read and a write that must not interleave with
        another process's (a path's first version). Its holders keep it for one short commit, so
        waiting polls, from 0.5 ms up to LOCK_POLL_MAX apart."""
        delay = 0.0005
        while True:
            with self.try_lock(name) as got:
                if got:
                    yield
                    return
            time.sleep(delay)
            delay = min(2 * delay, LOCK_POLL_MAX)

    @abstractmethod
    def size_bytes(self) -> int:
        """What the records take in the backend (for `cairn stats`)."""

    @abstractmethod
    def close(self) -> None:
        """Release the backend; the store is unusable afterwards."""
