"""Records of every layer over a MetadataStore: staged writes, batches, and the commit policy.

- writes are staged, then committed in one metadata transaction after the data they name is
  durable (the `seal` hook puts it), so a crash at any moment loses nothing acknowledged;
- a batch (re-entrant, per thread) delays the commits of that thread's writes to its
  outermost exit, or until the staged work passes a bound, so bulk imports sync rarely; a
  write from a thread outside any batch commits on return (with whatever else is staged),
  so it is durable when acknowledged even while another thread's batch is open;
- staged records are visible to readers of this process before they are committed.
"""

from __future__ import annotations

import contextlib
import threading
from typing import Callable, Iterable, Iterator, Sequence

from castore.local import tombstones
from castore.storage.metadata import MetadataStore, Table

COMMIT_BYTES = 64 * 1024 * 1024
COMMIT_RECORDS = 20_000
"""A batch commits early past either bound, keeping memory and unsynced data bounded."""


class Records:
    def __init__(self, metadata: MetadataStore, late: Iterable[Table] = ()) -> None:
        """Records of the `late` tables name data that is not durable yet when they are staged:
        a commit takes them only through `promote`, called by the seal hook once it knows
        which ones its data covers."""
        self.metadata = metadata
        self._late = frozenset(late)
        self.seal: Callable[[], None] = lambda: None
        """Makes staged data durable and promotes the late records naming it (set by the engine)."""
        self._lock = threading.Lock()
        self._commit_lock = threading.Lock()
        self._batches = threading.local()  # .depth: how many batches this thread is inside
        self._staged: dict[Table, dict[bytes, bytes]] = {}
        self._committing: dict[Table, dict[bytes, bytes]] = {}
        self._staged_records = 0
        self._staged_bytes = 0

    def get(self, table: Table, key: bytes) -> bytes | None:
        """A record, staged or committed."""
        with self._lock:
            for view in (self._staged, self._committing):
                value = view.get(table, {}).get(key)
                if value is not None:
                    return value
        value = self.metadata.get(table, key)
        if value is None and table.name in tombstones.SWEPT:
            return self._swept([key], table)[0]
        return value

    def get_many(self, table: Table, keys: Sequence[bytes]) -> list[bytes | None]:
        """Records for many keys, staged or committed: one metadata transaction for all of them."""
        with self._lock:
            views = [view[table] for view in (self._staged, self._committing) if table in view]
            found = [next((view[k] for view in views if k in view), None) for k in keys] if views \
                else None
        if found is None:
            found = [None] * len(keys)
        missing = [k for k, v in zip(keys, found) if v is None]
        committed = self.metadata.get_many(table, missing) if missing else []
        if table.name in tombstones.SWEPT and None in committed:
            unknown = [k for k, v in zip(missing, committed) if v is None]
            swept = iter(self._swept(unknown, table))
            committed = [next(swept) if v is None else v for v in committed]
        found_committed = iter(committed)
        return [next(found_committed) if v is None else v for v in found]

    def _swept(self, keys: Sequence[bytes], table: Table) -> list[bytes | None]:
        """Records of `keys` garbage collection swept and has not dropped yet (see tombstones.py)."""
        raw = self.metadata.get_many(tombstones.tombstones(table), keys)
        return [None if r is None else tombstones.decode(r)[1] for r in raw]

    def items(self, table: Table) -> Iterator[tuple[bytes, bytes]]:
        """Every committed record of `table` in key order (commit first to include staged ones)."""
        return self.metadata.items(table)

    def put(self, table: Table, items: Iterable[tuple[bytes, bytes]]) -> None:
        """Store records: durable on return, or when the batch that is open ends."""
        self.stage(table, items)
        self.settle()

    def stage(self, table: Table, items: Iterable[tuple[bytes, bytes]]) -> None:
        """Add records to the next commit without committing (see settle)."""
        with self._lock:
            staged = self._staged.setdefault(table, {})
            before = len(staged)
            staged.update(items)
            self._staged_records += len(staged) - before

    def count_data(self, size: int) -> None:
        """Count data written for the next commit towards COMMIT_BYTES."""
        with self._lock:
            self._staged_bytes += size

    def promote(self, tables: Iterable[Table]) -> None:
        """Move what is staged in `tables` into the commit under way (the seal hook's part)."""
        with self._lock:
            for table in tables:
                staged = self._staged.pop(table, None)
                if staged:
                    self._committing.setdefault(table, {}).update(staged)

    def settle(self) -> None:
        """Commit now, unless this thread is in a batch and the staged work is still small."""
        with self._lock:
            defer = self._batch_depth() > 0 and self._staged_records < COMMIT_RECORDS \
                and self._staged_bytes < COMMIT_BYTES
        if not defer:
            self.commit()

    @contextlib.contextmanager
    def batch(self) -> Iterator[None]:
        """Stage this thread's writes until its outermost batch exits, then commit them."""
        self._batches.depth = self._batch_depth() + 1
        try:
            yield
        finally:
            self._batches.depth -= 1
            if self._batches.depth == 0:
                self.commit()

    def _batch_depth(self) -> int:
        return getattr(self._batches, "depth", 0)

    def commit(self) -> None:
        """Make everything staged so far durable: data first, then the records naming it."""
        with self._commit_lock:
            with self._lock:
                # Records first: every piece of data they name is durable, or staged and made
                # durable by the seal below.
                self._committing = {t: recs for t, recs in self._staged.items() if t not in self._late}
                for table in self._committing:
                    del self._staged[table]
                self._staged_bytes = 0
            try:
                self.seal()
                with self._lock:
                    self._staged_records = sum(len(r) for r in self._staged.values())
                if any(self._committing.values()):
                    self.metadata.commit(self._committing)
            finally:
                with self._lock:
                    self._committing = {}
