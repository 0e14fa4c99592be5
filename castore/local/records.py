"""Records of every layer over a MetadataStore: staged writes, batches, and the commit policy.

- writes are staged, then committed in one metadata transaction once the data they name is
  durable, so a crash at any moment loses nothing acknowledged: a commit takes what is staged,
  and the `seal` hook flushes the data it names and says which gates (packs not yet put) it
  still waits for; records behind a gate are held until the gate is released (its pack put),
  and a later commit takes them;
- a batch (re-entrant, per thread) delays the commits of that thread's writes to its
  outermost exit, or until the staged work passes a bound, so bulk imports sync rarely. Such an
  early commit does not force the data out (an object store bills per pack put: a pack sealed
  half full costs a request for nothing); the final commit of a batch, and a write from a
  thread outside any batch, do, so a write is durable when acknowledged even while another
  thread's batch is open;
- staged, held and committing records are visible to readers of this process before they are
  committed;
- a commit that fails (a full disk) discards what is staged and held, since it may name data
  that was lost, and the store then writes again as if fresh: every write under way meanwhile
  (each thread's batch, or its write outside any) fails with BackendError when it settles,
  so none is acknowledged and lost, and none stages records afterwards: it may have skipped a
  chunk it found among the discarded ones, and its records would name that chunk. Records of
  data already put (ready) are kept.
"""

from __future__ import annotations

import contextlib
import threading
from typing import Callable, Collection, Hashable, Iterable, Iterator, Mapping, Sequence

from castore.errors import BackendError
from castore.local import tombstones
from castore.storage.metadata import MetadataStore, Table

COMMIT_BYTES = 64 * 1024 * 1024
COMMIT_RECORDS = 20_000
"""A batch commits early past either bound, keeping memory and unsynced data bounded."""
HELD_RECORDS = 100_000
"""An early commit forces the data out after all when this many records wait for it (about
25 MB of memory): a batch of many records and little new data would otherwise hold them all."""

Records_ = dict[Table, dict[bytes, bytes]]
_SEALING = object()
"""The gate of records whose commit is flushing the data they name."""


class _Held:
    """Records waiting for the release of every one of their gates."""

    def __init__(self, gates: Collection[Hashable]) -> None:
        self.gates = set(gates)
        self.records: Records_ = {}
        self.count = 0

    def add(self, records: Mapping[Table, Iterable[tuple[bytes, bytes]]]) -> None:
        for table, items in records.items():
            self.count += _merge(self.records, table, items)


class Records:
    def __init__(self, metadata: MetadataStore) -> None:
        self.metadata = metadata
        self.seal: Callable[[bool], Collection[Hashable]] = lambda final: ()
        """Flushes the data named by what is staged so far (set by the engine) and returns the
        gates that data still waits for; with final=True it makes all of it durable first
        (and returns none)."""
        self.reset: Callable[[], None] = lambda: None
        """Forgets the data side's failure once a failed commit discarded what was staged (engine)."""
        self._generation = 0
        """Failed commits so far: a write begun under an earlier count was discarded."""
        self._lost = ""
        self._lock = threading.Lock()
        self._commit_lock = threading.Lock()
        self._batches = threading.local()  # .depth: batches this thread is in; .generation: see writing()
        self._staged: Records_ = {}  # for the next commit, whose seal flushes the data they name
        self._held: list[_Held] = []  # waiting for gates, oldest first
        self._ready: Records_ = {}  # their data is durable: any commit takes them
        self._committing: Records_ = {}
        self._released_while_sealing: set[Hashable] | None = None
        """Gates released since the seal of the commit under way began: the gates it returns may
        name one released before it returned."""
        self._staged_records = 0  # staged and ready
        self._staged_bytes = 0

    def get(self, table: Table, key: bytes, *, swept: bool = True) -> bytes | None:
        """A record, staged, held or committed; with `swept`, also one GC swept and has not dropped
        (readers). A writer asking whether data is stored passes swept=False: a swept record's
        data may be deleted before the writer's record naming it commits, so it writes it again."""
        with self._lock:
            for view in self._views():
                value = view.get(table, {}).get(key)
                if value is not None:
                    return value
        value = self.metadata.get(table, key)
        if value is None and swept and table.name in tombstones.SWEPT:
            return self._swept([key], table)[0]
        return value

    def get_many(self, table: Table, keys: Sequence[bytes], *, swept: bool = True) -> list[bytes | None]:
        """Records for many keys, as get() finds them: one metadata transaction for all of them."""
        with self._lock:
            views = [view[table] for view in self._views() if table in view]
            found = [next((view[k] for view in views if k in view), None) for k in keys] if views \
                else None
        if found is None:
            found = [None] * len(keys)
        missing = [k for k, v in zip(keys, found) if v is None]
        committed = self.metadata.get_many(table, missing) if missing else []
        if swept and table.name in tombstones.SWEPT and None in committed:
            unknown = [k for k, v in zip(missing, committed) if v is None]
            swept = iter(self._swept(unknown, table))
            committed = [next(swept) if v is None else v for v in committed]
        found_committed = iter(committed)
        return [next(found_committed) if v is None else v for v in found]

    def _views(self) -> Iterator[Records_]:
        """Uncommitted records, newest first (caller holds the lock)."""
        yield self._staged
        for held in reversed(self._held):
            yield held.records
        yield self._ready
        yield self._committing

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
        """Add records of this thread's write to the next commit without committing (see settle);
        none once a failed commit doomed the write (it fails when it settles)."""
        self.writing()
        if self._batches.generation == self._generation:
            self.note(table, items)

    def note(self, table: Table, items: Iterable[tuple[bytes, bytes]]) -> None:
        """Stage records of where data went (the delta index): part of the writes that added the
        data, whichever thread writes them down."""
        with self._lock:
            self._staged_records += _merge(self._staged, table, items)

    def hold(self, gates: Collection[Hashable], records: Mapping[Table, Iterable[tuple[bytes, bytes]]]) -> None:
        """Keep records out of every commit until each of `gates` is released (see release)."""
        wanted = set(gates)
        with self._lock:
            if not self._held or self._held[-1].gates != wanted:  # only the newest: a record's
                self._held.append(_Held(wanted))                  # versions are released in order
            self._held[-1].add(records)

    def release(self, gate: Hashable, table: Table, items: Iterable[tuple[bytes, bytes]]) -> None:
        """The data behind `gate` is durable: records held for it alone, and `items` (which
        describe that data), are ready for the next commit."""
        with self._lock:
            self._staged_records += _merge(self._ready, table, items)
            if self._released_while_sealing is not None:
                self._released_while_sealing.add(gate)
            still = []
            for held in self._held:
                held.gates.discard(gate)
                if held.gates:
                    still.append(held)
                else:
                    for held_table, records in held.records.items():
                        self._staged_records += _merge(self._ready, held_table, records.items())
            self._held = still

    def count_data(self, size: int) -> None:
        """Count data written for the next commit towards COMMIT_BYTES."""
        with self._lock:
            self._staged_bytes += size

    def settle(self) -> None:
        """Commit now, unless this thread is in a batch and the staged work is still small;
        only a commit outside a batch waits for the data to be durable."""
        if self._batch_depth() == 0:
            self._end_write()
            return
        with self._lock:
            early = self._staged_records >= COMMIT_RECORDS or self._staged_bytes >= COMMIT_BYTES
        if early:
            self.commit(final=False)  # the batch's end says whether its writes survived

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
        """After a failed commit: forget the data side's failure, drop what is staged and held
        (it may name lost data) and count the failure, so the writes under way learn theirs."""
        self.reset()
        with self._lock:
            self._staged, self._held = {}, []
            self._released_while_sealing = None
            self._staged_records = sum(len(r) for r in self._ready.values())
            self._staged_bytes = 0
            self._generation += 1
            self._lost = str(failure).splitlines()[0] if str(failure) else type(failure).__name__

    def in_batch(self) -> bool:
        """Whether this thread's writes are being staged for its batch's end."""
        return self._batch_depth() > 0

    def _batch_depth(self) -> int:
        return getattr(self._batches, "depth", 0)

    def commit(self, final: bool = True) -> None:
        """Commit what is staged and ready. Data first, then the records naming it: with `final`,
        everything staged so far is durable on return; without, what waits for data still
        being gathered (an open pack) is held for a later commit."""
        with self._commit_lock:
            with self._lock:
                final = final or sum(held.count for held in self._held) >= HELD_RECORDS
                sealing = _Held({_SEALING})  # visible while the seal flushes what they name
                sealing.add(self._staged)
                self._held.append(sealing)
                self._staged = {}
                self._staged_records -= sealing.count
                self._staged_bytes = 0
                self._released_while_sealing = set()
            try:
                gates = self.seal(final)
            except BaseException as e:
                self._discard(e)
                raise
            with self._lock:
                sealing.gates = set(gates) - self._released_while_sealing
                self._released_while_sealing = None
                if not sealing.gates:
                    self._held.remove(sealing)
                    for table, records in sealing.records.items():
                        self._staged_records += _merge(self._ready, table, records.items())
                self._committing, self._ready = self._ready, {}
                self._staged_records -= sum(len(r) for r in self._committing.values())
            try:
                if any(self._committing.values()):
                    self.metadata.commit(self._committing)
            except BaseException as e:
                self._discard(e)
                raise
            finally:
                with self._lock:
                    self._committing = {}


def _merge(into: Records_, table: Table, items: Iterable[tuple[bytes, bytes]]) -> int:
    """Add records to a table of `into`; how many keys are new there."""
    records = into.setdefault(table, {})
    before = len(records)
    records.update(items)
    return len(records) - before
