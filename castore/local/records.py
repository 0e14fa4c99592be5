"""Records of every layer over a MetadataStore: staged writes, batches, and the commit policy.

- writes are staged, then committed in one metadata transaction after the data they name is
  durable (the `seal` hook puts it), so a crash at any moment loses nothing acknowledged;
- a batch (re-entrant, per thread) delays the commits of that thread's writes to its
  outermost exit, or until the staged work passes a bound, so bulk imports sync rarely; a
  write from a thread outside any batch commits on return (with whatever else is staged),
  so it is durable when acknowledged even while another thread's batch is open;
- staged records are visible to readers of this process before they are committed;
- a commit that fails (a full disk) discards everything staged, since it may name data that
  was lost, and the store then writes again as if fresh: every write under way meanwhile
  (each thread's batch, or its write outside any) fails with BackendError when it settles,
  so none is acknowledged and lost, and none stages records naming what was lost.
"""

from __future__ import annotations

import contextlib
import threading
from typing import Callable, Iterable, Iterator, Sequence

from castore.errors import BackendError
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
        self.reset: Callable[[], None] = lambda: None
        """Forgets the data side's failure once a failed commit discarded what was staged (engine)."""
        self._generation = 0
        """Failed commits so far: a write begun under an earlier count was discarded."""
        self._lost = ""
        self._lock = threading.Lock()
        self._commit_lock = threading.Lock()
        self._batches = threading.local()  # .depth: batches this thread is in; .generation: see writing()
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

    def writing(self) -> None:
        """Note that this thread's write is under way (settle says whether it survived)."""
        if getattr(self._batches, "generation", None) is None:
            self._batches.generation = self._generation

    def stage(self, table: Table, items: Iterable[tuple[bytes, bytes]]) -> None:
        """Add records of this thread's write to the next commit without committing (see settle)."""
        self.writing()
        self.note(table, items)

    def note(self, table: Table, items: Iterable[tuple[bytes, bytes]]) -> None:
        """Stage records of where data went (chunk locations, pack rows, the delta index): part
        of the writes that added the data, whichever thread writes them down."""
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
        if self._batch_depth() == 0:
            self._end_write()
            return
        with self._lock:
            early = self._staged_records >= COMMIT_RECORDS or self._staged_bytes >= COMMIT_BYTES
        if early:
            self.commit()  # the batch's end says whether its writes survived

    @contextlib.contextmanager
    def batch(self) -> Iterator[None]:
        """Stage this thread's writes until its outermost batch exits, then commit them."""
        if self._batch_depth() == 0:
            self._batches.generation = self._generation
        self._batches.depth = self._batch_depth() + 1
        try:
            yield
        finally:
            self._batches.depth -= 1
            if self._batches.depth == 0:
                self._end_write()

    def _end_write(self) -> None:
        """Commit at the end of this thread's write, then fail it if a failed commit discarded it."""
        try:
            self.commit()
        finally:
            began = self._batches.__dict__.pop("generation", None)
        if began is not None and began != self._generation:
            raise BackendError(f"a commit failed while this write was under way ({self._lost}); "
                               "it was not stored: write it again")

    def _discard(self, failure: BaseException) -> None:
        """After a failed commit: forget the data side's failure, drop what is staged (it may name
        lost data) and count the failure, so the writes under way learn theirs."""
        self.reset()
        with self._lock:
            self._staged = {}
            self._staged_records = self._staged_bytes = 0
            self._generation += 1
            self._lost = str(failure).splitlines()[0] if str(failure) else type(failure).__name__

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
            except BaseException as e:
                self._discard(e)
                raise
            finally:
                with self._lock:
                    self._committing = {}
