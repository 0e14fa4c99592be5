"""The embedded store engine: one LMDB environment and the pack files of one store directory.

It owns what makes the store consistent and durable, for every layer that keeps
records here (blobs, directories, and path infos of the Nix layer):
- writes are staged, then committed as one LMDB transaction after the pack data they
  point at is synced, so a crash at any moment loses nothing acknowledged;
- a batch (re-entrant, per thread) delays the commits of that thread's writes to its
  outermost exit, or until the staged work passes a bound, so bulk imports sync rarely;
  a write from a thread outside any batch commits on return (with whatever else is
  staged), so it is durable when acknowledged even while another thread's batch is open;
- staged records are visible to readers of this process before they are committed.

LMDB allows one Environment per path per process, so `LocalEngine.open` hands out a
shared, reference-counted instance.
"""

from __future__ import annotations

import contextlib
import functools
import os
import threading
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from typing import Iterable, Iterator, Sequence

import lmdb
import zstandard

from castore.digest import B3Digest
from castore.errors import BackendError, CorruptionError
from castore.local import deltas, readahead
from castore.storage import lmdb_compaction as compaction
from castore.local.chunker import DEFAULT_PARAMS, ChunkingParams
from castore.local.frames import SMALL, ChunkRecord, FrameClass, FrameReader, FrameWriter, verified
from castore.local.packs import PackFiles

FORMAT = b"cairn-local-1"
MAP_SIZE = 1 << 40  # address space only: the file grows as needed
MAX_DBS = 16
CHUNKS, BLOBS, META, SIMILAR = "chunks", "blobs", "meta", "similar"
"""SIMILAR maps a sketch feature to a plain chunk that has it (see deltas.py)."""
NEVER_REWRITTEN = frozenset({CHUNKS, BLOBS, SIMILAR})
"""Records whose value is fixed by their key, or (SIMILAR) whose first value stays, so bases
do not move under deltas."""
READ_WORKERS = 2
"""Threads that read frames ahead for read_chunks (zstd and BLAKE3 release the GIL)."""
FRAMES_AHEAD = 4
"""Frames read_chunks reads ahead of its consumer: bounds the memory it holds to a few frames."""
MAX_DELTA_DEPTH = 8
"""Deltas chained deeper are refused as corrupt (see _read_delta): a cycle must not recurse forever."""
STANDALONE_LEVEL = 3
"""zstd level of the estimate a delta is weighed against: cheap, and close to what a frame gets."""
COMMIT_BYTES = 64 * 1024 * 1024
COMMIT_RECORDS = 20_000
"""A batch commits early past either bound, keeping memory and unsynced data bounded."""


class StoreFormatError(BackendError):
    """The store was created with a format or chunking this code does not produce."""


class LocalEngine:
    _instances: dict[tuple[int, str], LocalEngine] = {}
    _instances_lock = threading.Lock()

    @classmethod
    def open(cls, path: str) -> LocalEngine:
        """The process's engine for the store at `path`, created on first use; close() releases it."""
        path = os.path.realpath(path)
        key = (os.getpid(), path)  # an engine inherited through fork() must not be reused
        with cls._instances_lock:
            engine = cls._instances.get(key)
            if engine is None:
                engine = cls._instances[key] = cls(path)
            engine._refs += 1
            return engine

    def __init__(self, path: str, params: ChunkingParams = DEFAULT_PARAMS) -> None:
        self.path = path
        self.params = params
        meta = os.path.join(path, "meta")
        os.makedirs(meta, exist_ok=True)
        self._users = compaction.Users(meta)
        try:
            self.env = lmdb.open(meta, map_size=MAP_SIZE, max_dbs=MAX_DBS)
        except BaseException:
            self._users.release()
            raise
        self._dbs: dict[str, lmdb._Database] = {}
        self._dbs_lock = threading.Lock()
        try:
            for name in (CHUNKS, BLOBS):
                self.db(name)
            self._check_format()
        except BaseException:
            self.env.close()
            self._users.release()
            raise
        self.packs = PackFiles(os.path.join(path, "packs"))
        self._frames = FrameWriter(self.packs, self._chunks_written)
        self._reader = FrameReader(self.packs)
        self._read_pool: ThreadPoolExecutor | None = None
        self._refs = 0
        self._lock = threading.Lock()
        self._commit_lock = threading.Lock()
        self._batches = threading.local()  # .depth: how many batches this thread is inside
        self._staged: dict[str, dict[bytes, bytes]] = {}
        self._committing: dict[str, dict[bytes, bytes]] = {}
        self._staged_records = 0
        self._staged_bytes = 0
        self._wrote = False  # whether this process committed anything: only a writer compacts

    # -- LMDB --------------------------------------------------------------------------

    def db(self, name: str) -> lmdb._Database:
        """A named LMDB database of this store, created on first use."""
        handle = self._dbs.get(name)
        if handle is not None:
            return handle
        with self._dbs_lock:
            handle = self._dbs.get(name)
            if handle is None:
                handle = self._dbs[name] = self.env.open_db(name.encode(), create=True)
            return handle

    def _check_format(self) -> None:
        """Record the format and chunking at creation; refuse a store made differently."""
        expected = {b"format": FORMAT, b"chunking": self.params.describe().encode()}
        meta = self.db(META)
        with self.env.begin(db=meta) as txn:
            recorded = {k: txn.get(k) for k in expected}
        if any(v is None for v in recorded.values()):
            with self.env.begin(db=meta, write=True) as txn:
                for k, v in expected.items():
                    txn.put(k, v, overwrite=False)
                recorded = {k: txn.get(k) for k in expected}
        for k, v in expected.items():
            if recorded[k] != v:
                raise StoreFormatError(
                    f"store {self.path} was created with {k.decode()} {recorded[k].decode(errors='replace')!r}, "
                    f"this version uses {v.decode()!r}; refusing to open it (its chunks would not match)")

    # -- records -----------------------------------------------------------------------

    def get(self, db: str, key: bytes) -> bytes | None:
        """A record, staged or committed."""
        with self._lock:
            for view in (self._staged, self._committing):
                value = view.get(db, {}).get(key)
                if value is not None:
                    return value
        with self.env.begin(db=self.db(db), buffers=False) as txn:
            return txn.get(key)

    def get_many(self, db: str, keys: Sequence[bytes]) -> list[bytes | None]:
        """Records for many keys, staged or committed: one LMDB transaction for all of them."""
        with self._lock:
            views = [view[db] for view in (self._staged, self._committing) if db in view]
            found = [next((view[k] for view in views if k in view), None) for k in keys] if views \
                else [None] * len(keys)
        with self.env.begin(db=self.db(db), buffers=False) as txn:
            return [txn.get(k) if v is None else v for k, v in zip(keys, found)]

    def contains(self, db: str, key: bytes) -> bool:
        return self.get(db, key) is not None

    def put(self, db: str, items: Iterable[tuple[bytes, bytes]]) -> None:
        """Store records: durable on return, or when the batch that is open ends."""
        self.stage(db, items)
        self.settle()

    def stage(self, db: str, items: Iterable[tuple[bytes, bytes]]) -> None:
        """Add records to the next commit without committing (see settle)."""
        with self._lock:
            staged = self._staged.setdefault(db, {})
            before = len(staged)
            staged.update(items)
            self._staged_records += len(staged) - before

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
        """Make everything staged so far durable: pack data first, then the records naming it."""
        with self._commit_lock:
            with self._lock:
                # Records first: every chunk they name is committed, staged, or pending in a
                # frame sealed by the flush below; so flush, then take the locations.
                self._committing = {db: recs for db, recs in self._staged.items() if db != CHUNKS}
                for db in self._committing:
                    del self._staged[db]
            try:
                self._frames.flush()
                with self._lock:
                    self._committing[CHUNKS] = self._staged.pop(CHUNKS, {})
                    self._staged_records = sum(len(r) for r in self._staged.values())
                    self._staged_bytes = 0
                if any(self._committing.values()):
                    self.packs.sync()
                    self._write(self._committing)
            finally:
                with self._lock:
                    self._committing = {}

    def _write(self, records: dict[str, dict[bytes, bytes]]) -> None:
        handles = {db: self.db(db) for db in records}  # opening one needs its own write txn
        self._wrote = True
        with self.env.begin(write=True) as txn:
            for db, items in records.items():
                overwrite = db not in NEVER_REWRITTEN
                for key, value in items.items():
                    txn.put(key, value, db=handles[db], overwrite=overwrite)

    # -- chunks ------------------------------------------------------------------------

    def add_chunk(self, digest: bytes, data: bytes, kind: FrameClass = SMALL) -> None:
        """Store a chunk once; it becomes durable with the next commit.

        `kind` picks the frames it joins: LARGE for pieces of a chunked blob, DIRECTORIES for
        directories, SMALL otherwise. A chunk much like a stored one is kept as a delta against
        it (see deltas.py) if its class takes deltas.
        """
        if self.has_chunk(digest):
            return
        with self._lock:
            self._staged_bytes += len(data)
        delta = self._delta(digest, data, kind) if kind.delta_below and len(data) >= deltas.MIN_SIZE else None
        self._frames.add(digest, data, kind, delta)

    def _delta(self, digest: bytes, data: bytes, kind: FrameClass) -> tuple[bytes, bytes] | None:
        """(base digest, payload) when a delta pays. A chunk with no base close enough is indexed
        by its features, so it can be a base itself."""
        keys = deltas.features(data)
        votes = Counter(base for base in (self.get(SIMILAR, k) for k in keys) if base is not None)
        best = votes.most_common(1)
        if best and best[0][1] >= kind.delta_votes:
            return self._delta_against(best[0][0], data, kind)
        self.stage(SIMILAR, ((k, digest) for k in keys))
        return None

    def _delta_against(self, base_digest: bytes, data: bytes, kind: FrameClass) -> tuple[bytes, bytes] | None:
        try:
            base = self.read_chunk(base_digest)
        except CorruptionError:
            return None  # a damaged base is verify's to report, not a reason to fail this write
        if base is None:
            return None
        payload = deltas.encode(data, base, kind.level)
        alone = zstandard.ZstdCompressor(level=STANDALONE_LEVEL).compress(data)
        return (base_digest, payload) if len(payload) < kind.delta_below * len(alone) else None

    def has_chunk(self, digest: bytes) -> bool:
        return self._frames.pending(digest) is not None or self.chunk_record(digest) is not None

    def chunk_length(self, digest: bytes) -> int | None:
        pending = self._frames.pending(digest)
        if pending is not None:
            return len(pending)
        record = self.chunk_record(digest)
        return None if record is None else record.length

    def read_chunk(self, digest: bytes) -> bytes | None:
        """A chunk's bytes, verified against its digest; None when unknown."""
        return self._read(digest, 0)

    def _read(self, digest: bytes, deltas_above: int) -> bytes | None:
        # Pending first: a chunk leaves `pending` only after its location is staged.
        pending = self._frames.pending(digest)
        if pending is not None:
            return pending
        record = self.chunk_record(digest)
        if record is None:
            return None
        if record.base is None:
            return bytes(self._reader.read(digest, record.location))
        return self._read_delta(digest, record, deltas_above + 1)

    def read_chunks(self, digests: Sequence[bytes]) -> Iterator[bytes | memoryview | None]:
        """Many chunks in order, each verified, None for one unknown: one index transaction for
        all lookups, and worker threads decompress the frames FRAMES_AHEAD ahead of the consumer,
        each frame once for the neighbouring chunks that share it. Plain chunks come as views
        into their frame, not copies."""
        records = self.get_many(CHUNKS, digests)
        for run in readahead.in_order(self._runs(digests, records), self._readers(), FRAMES_AHEAD):
            yield from run

    def _runs(self, digests: Sequence[bytes], records: list[bytes | None]) -> Iterator[functools.partial]:
        """Tasks reading consecutive chunks stored in one frame (plain chunks, or the payloads of
        deltas, whose bases are read as the task comes to them); unknown chunks go alone."""
        run: list[tuple[bytes, ChunkRecord | None]] = []
        frame = None
        for digest, raw in zip(digests, records):
            record = None if raw is None else ChunkRecord.decode(raw)
            here = None if record is None else (record.location.pack, record.location.frame_offset)
            if run and (here is None or here != frame):
                yield functools.partial(self._read_run, run)
                run = []
            run.append((digest, record))
            frame = here
        if run:
            yield functools.partial(self._read_run, run)

    def _read_run(self, run: list[tuple[bytes, ChunkRecord | None]]) -> list[bytes | memoryview | None]:
        out: list[bytes | memoryview | None] = []
        for digest, record in run:
            if record is None:  # pending, written since the lookup, or unknown
                out.append(self.read_chunk(digest))
            elif record.base is None:
                out.append(self._reader.read(digest, record.location))
            else:
                out.append(self._read_delta(digest, record, 1))
        return out

    def _readers(self) -> ThreadPoolExecutor:
        with self._lock:
            if self._read_pool is None:
                self._read_pool = ThreadPoolExecutor(READ_WORKERS, thread_name_prefix="cairn-read")
            return self._read_pool

    def _read_delta(self, digest: bytes, record: ChunkRecord, depth: int) -> bytes:
        """A delta chunk, verified. Its base is a plain chunk, unless two processes stored one
        chunk at once and the delta's record won: a chain, so its length is bounded."""
        if depth > MAX_DELTA_DEPTH:
            raise CorruptionError(f"chunk {B3Digest(digest)} is a delta more than {MAX_DELTA_DEPTH} deep")
        base = self._read(record.base, depth)
        if base is None:
            raise CorruptionError(f"chunk {B3Digest(digest)} is a delta against {B3Digest(record.base)}, "
                                  "which is missing")
        payload = self._reader.stored(digest, record.location)
        try:
            if zstandard.get_frame_parameters(payload).content_size != record.length:
                raise zstandard.ZstdError(f"its frame does not claim the chunk's {record.length} bytes")
            data = deltas.decode(payload, base)
        except zstandard.ZstdError as e:
            raise CorruptionError(f"delta of chunk {B3Digest(digest)} does not decompress: {e}") from None
        return verified(digest, data, record.location)

    def chunk_record(self, digest: bytes) -> ChunkRecord | None:
        raw = self.get(CHUNKS, digest)
        return None if raw is None else ChunkRecord.decode(raw)

    def _chunks_written(self, records: dict[bytes, ChunkRecord]) -> None:
        self.stage(CHUNKS, ((d, record.encode()) for d, record in records.items()))

    # -- lifecycle ---------------------------------------------------------------------

    def stored_bytes(self) -> int:
        """Bytes of pack files (compressed, deduplicated data)."""
        return self.packs.total_bytes()

    def close(self) -> None:
        """Release one reference; the last one commits what is staged and closes everything."""
        with self._instances_lock:
            self._refs -= 1
            if self._refs > 0:
                return
            self._instances.pop((os.getpid(), self.path), None)
        committed = False
        try:
            self.commit()
            committed = True
        finally:
            self._frames.shutdown()
            if self._read_pool is not None:
                self._read_pool.shutdown(wait=True)
            self._reader.clear()
            self.packs.close()
            self._close_index(compact=committed and self._wrote)

    def _close_index(self, compact: bool) -> None:
        """Close LMDB, compacting its file first if this process wrote, it is mostly free pages
        and no other process has the store open (see compaction.py); a failed compaction changes
        nothing. A process that only read leaves it as it is, so a read never pays for a rewrite."""
        meta = self.env.path()
        copy = None
        try:
            if compact and self._users.alone() and compaction.worthwhile(self.env):
                copy = compaction.compacted(self.env)
        except (OSError, lmdb.Error):
            copy = None
        finally:
            self.env.close()
        try:
            if copy is not None:
                compaction.install(copy, meta)
        finally:
            self._users.release()


class EngineUser:
    """A service over the engine: holds one reference (see LocalEngine.open), shares its batch,
    and releases the reference on close()."""

    def __init__(self, engine: LocalEngine) -> None:
        self._engine: LocalEngine | None = engine

    @property
    def engine(self) -> LocalEngine:
        if self._engine is None:
            raise ValueError(f"{type(self).__name__} is closed")
        return self._engine

    def batch(self) -> contextlib.AbstractContextManager[None]:
        """The engine's batch: every service of the store shares it."""
        return self.engine.batch()

    def close(self) -> None:
        if self._engine is not None:
            self._engine, engine = None, self._engine
            engine.close()
