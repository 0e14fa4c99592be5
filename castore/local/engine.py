"""The embedded store engine: chunks, framed, compressed and delta-encoded, over two stores.

It keeps the chunks of every layer (file contents and directory encodings alike, both
addressed by the BLAKE3 of their bytes) in a PackStore, and their locations, with every other
layer's records, in a MetadataStore (through records.py, which stages them and decides when
to commit). It knows neither backend: what it owns is chunk storage, framing, compression,
deltas and reading ahead, and the order of a commit (frames flushed, packs put, then one
metadata transaction naming them).
"""

from __future__ import annotations

import contextlib
import itertools
import threading
from collections import Counter
from typing import Callable, Iterable, Iterator, Sequence

import zstandard

from castore.digest import B3Digest
from castore.errors import BackendError, CorruptionError
from castore.local import deltas, readahead
from castore.local.chunker import DEFAULT_PARAMS, ChunkingParams
from castore.local.frames import SMALL, ChunkRecord, FrameClass, FrameReader, FrameWriter, Location, verified
from castore.local.packs import Packs
from castore.local.records import Records
from castore.local.workers import Workers
from castore.storage.metadata import MetadataStore, Table
from castore.storage.packs import PackStore

FORMAT = b"cairn-local-2"
"""2: packs are immutable, named by their BLAKE3, numbered through the `packs` table."""
CHUNKS = Table("chunks", insert_only=True)
"""Chunk digest -> ChunkRecord (frames.py)."""
SIMILAR = Table("similar", insert_only=True)
"""A sketch feature -> a plain chunk that has it (see deltas.py); the first stays, so bases do
not move under deltas."""
META = Table("meta", insert_only=True)
"""The format and chunking the store was created with."""
READ_WORKERS = 2
"""Threads that decompress frames ahead for read_chunks (zstd releases the GIL)."""
FRAMES_AHEAD = 3
"""Frames read_chunks hands to the workers ahead of the run its consumer reads: one more than there
are workers, so that a worker done with one finds the next waiting (numpy-2.1.2's cold render:
76-82 ms with 3, 84-101 ms with 2); and only a few per stream, so that many streams' frames read
ahead do not push each other's out of the frame cache."""
RUNS_AHEAD = 1024
"""Runs of chunks read_chunks looks at ahead of its consumer at most (when their frames are cached,
nothing else bounds it): memory stays bounded whatever the number of chunks."""
FIRST_LOOKUP = 32
LOOKUP = 1024
"""Chunk records read_chunks looks up at once: a few first, so that the first frames start
decompressing while the next page is looked up, then pages of LOOKUP."""
MAX_DELTA_DEPTH = 8
"""Deltas chained deeper are refused as corrupt (see _read_delta): a cycle must not recurse forever."""
STANDALONE_LEVEL = 3
"""zstd level of the estimate a delta is weighed against: cheap, and close to what a frame gets."""
CHECK_CHUNKS = 512
CHECK_BYTES = 512 << 10
"""New chunks wait, up to this many or this many bytes, to be looked up in CHUNKS together: one
metadata query for hundreds of chunks, where a remote metadata store (PostgreSQL) answers each
query a round trip later (30,000 single lookups took 10 of the corpus import's 20 s)."""


class StoreFormatError(BackendError):
    """The store was created with a format or chunking this code does not produce."""


class LocalEngine:
    def __init__(self, metadata: MetadataStore, packs: PackStore, params: ChunkingParams = DEFAULT_PARAMS,
                 release: Callable[[], bool] | None = None) -> None:
        """Takes over both stores (close() closes them). `release` drops one reference of a shared
        engine and says whether it was the last (see registry.py)."""
        check_format(metadata, params)
        self.params = params
        self.metadata = metadata
        self.records = Records(metadata)
        self.records.seal = self._seal
        self.records.reset = self._reset
        self.packs = Packs(packs, self.records)
        self._frames = FrameWriter(self.packs, self._chunks_written)
        self._reader = FrameReader(self.packs)
        self._read_pool: Workers | None = None
        self._pool_lock = threading.Lock()
        self._release = release
        self._unchecked: dict[bytes, tuple[bytes, FrameClass]] = {}
        """Chunks added but not yet looked up in CHUNKS (see add_chunk), in order."""
        self._unchecked_bytes = 0
        self._unchecked_lock = threading.Lock()
        self._check_lock = threading.Lock()

    def batch(self) -> contextlib.AbstractContextManager[None]:
        return self.records.batch()

    def commit(self) -> None:
        self.records.commit()

    def _seal(self, final: bool) -> frozenset[int]:
        """A commit's data part: chunks waiting for their lookup framed, frames flushed into packs,
        and (final) packs put; the packs not put yet (see Records.seal)."""
        self._check_unchecked()
        self._frames.flush()
        return self.packs.seal(final)

    def _reset(self) -> None:
        """After a failed commit (see Records.commit): frames and packs write afresh."""
        self.packs.reset()  # first: a frame appended meanwhile must not meet the old failure
        self._frames.reset()

    # -- chunks ------------------------------------------------------------------------

    def add_chunk(self, digest: bytes, data: bytes, kind: FrameClass = SMALL) -> None:
        """Store a chunk once; it becomes durable with the next commit.

        `kind` picks the frames it joins: LARGE for pieces of a chunked blob, DIRECTORIES for
        directories, SMALL otherwise. A chunk much like a stored one is kept as a delta against
        it (see deltas.py) if its class takes deltas.

        The lookup whether it is stored already waits for CHECK_CHUNKS others (or the commit),
        so that many chunks are looked up at once; meanwhile it reads as pending.
        """
        self.records.writing()
        with self._unchecked_lock:
            if digest in self._unchecked or self._frames.pending(digest) is not None:
                return
            self._unchecked[digest] = (data, kind)
            self._unchecked_bytes += len(data)
            full = len(self._unchecked) >= CHECK_CHUNKS or self._unchecked_bytes >= CHECK_BYTES
        if full:
            self._check_unchecked()

    def _check_unchecked(self) -> None:
        """Look the waiting chunks up in one query, and the sketch features of the new ones that
        may be deltas in one more, then frame the new ones in the order they came. Each leaves
        `_unchecked` only once framed (pending there), so it never looks absent to a reader or
        a writer in between."""
        with self._check_lock:
            with self._unchecked_lock:
                waiting = list(self._unchecked.items())
            if not waiting:
                return
            stored = self.records.get_many(CHUNKS, [digest for digest, _ in waiting], swept=False)
            features = {digest: deltas.features(data) for (digest, (data, kind)), record in zip(waiting, stored)
                        if record is None and kind.delta_below and len(data) >= deltas.MIN_SIZE}
            keys = list({key for keys in features.values() for key in keys})
            similar = dict(zip(keys, self.records.get_many(SIMILAR, keys))) if keys else {}
            for (digest, (data, kind)), record in zip(waiting, stored):
                if record is None:
                    self.records.count_data(len(data))
                    delta = self._delta(digest, data, kind, features[digest], similar) if digest in features else None
                    self._frames.add(digest, data, kind, delta)
                with self._unchecked_lock:
                    del self._unchecked[digest]
                    self._unchecked_bytes -= len(data)

    def _delta(self, digest: bytes, data: bytes, kind: FrameClass, keys: list[bytes],
               similar: dict[bytes, bytes | None]) -> tuple[bytes, bytes] | None:
        """(base digest, payload) when a delta pays, by the bases `similar` holds for the chunk's
        sketch features `keys`. A chunk with no base close enough is indexed by its features (in
        `similar` too, for the chunks after it), so it can be a base itself."""
        votes = Counter(base for key in keys if (base := similar.get(key)) is not None and base != digest)
        best = votes.most_common(1)
        if best and best[0][1] >= kind.delta_votes:
            return self._delta_against(best[0][0], data, kind)
        self.records.note(SIMILAR, ((k, digest) for k in keys))
        similar.update((k, digest) for k in keys)
        return None

    def _delta_against(self, base_digest: bytes, data: bytes, kind: FrameClass) -> tuple[bytes, bytes] | None:
        """A delta against a plain chunk only. The index names chunks that were plain when noted,
        but GC may sweep one and a writer store it again as a delta: a delta against that could
        close a cycle, as a chunk swept and written again would be against itself (its index
        entries and its tombstone outlive its record: hence the check in _delta too). Each new
        delta then points at a chunk that points nowhere, which closes no cycle. (A chunk still
        waiting for its lookup may become a delta later; it too will point only at a plain one.)"""
        if self._frames.pending_base(base_digest) is not None:
            return None  # pending as a delta itself
        record = None if self._pending(base_digest) is not None else self.chunk_record(base_digest)
        if record is not None and record.base is not None:
            return None
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
        return self._pending(digest) is not None or self.chunk_record(digest) is not None

    def has_chunks(self, digests: Sequence[bytes]) -> list[bool]:
        """has_chunk() of each, the records looked up in one query."""
        pending = [self._pending(d) is not None for d in digests]
        records = self.records.get_many(CHUNKS, [d for d, p in zip(digests, pending) if not p])
        looked_up = iter(records)
        return [p or next(looked_up) is not None for p in pending]

    def _pending(self, digest: bytes) -> bytes | None:
        """A chunk's data while it waits for its lookup or its location is not yet recorded."""
        waiting = self._unchecked.get(digest)  # one dict lookup is atomic
        return waiting[0] if waiting is not None else self._frames.pending(digest)

    def chunk_length(self, digest: bytes) -> int | None:
        pending = self._pending(digest)
        if pending is not None:
            return len(pending)
        record = self.chunk_record(digest)
        return None if record is None else record.length

    def read_chunk(self, digest: bytes) -> bytes | None:
        """A chunk's bytes, verified against its digest; None when unknown."""
        return self._read(digest, 0)

    def _read(self, digest: bytes, deltas_above: int, known: dict[bytes, ChunkRecord] | None = None) -> bytes | None:
        """A chunk by its record in `known` (looked up ahead), else by its record now."""
        # Pending first: a chunk leaves `pending` only after its location is staged.
        pending = self._pending(digest)
        if pending is not None:
            return pending
        record = known.get(digest) if known else None
        if record is None:
            record = self.chunk_record(digest)
        if record is None:
            return None
        return bytes(self._read_record(digest, record, deltas_above, known))

    def _read_record(self, digest: bytes, record: ChunkRecord, deltas_above: int,
                     known: dict[bytes, ChunkRecord] | None = None, retry: bool = True) -> bytes | memoryview:
        """A chunk read where `record` says. Garbage collection may have moved it to another
        pack and deleted the one the record named: then its record is read once more."""
        try:
            if record.base is None:
                return self._reader.read(digest, record.location)
            return self._read_delta(digest, record, deltas_above + 1, known)
        except CorruptionError:
            moved = self.chunk_record(digest) if retry else None
            if moved is None or moved == record:
                raise
            return self._read_record(digest, moved, deltas_above, None, retry=False)

    def read_chunks(self, digests: Iterable[bytes]) -> Iterator[bytes | memoryview | None]:
        """Many chunks in order, each verified, None for one unknown.

        Their records are looked up a page at a time, the first page small, so that the first
        frames are being decompressed while the rest are looked up. Worker threads decompress the
        next FRAMES_AHEAD frames the chunks need (the deltas' bases' too) that are not in the
        frame cache, while the consumer's thread slices and verifies the chunks, each frame looked
        up once for a run of neighbouring chunks that share it. Plain chunks come as views into
        their frame, not copies. `digests` is read only as far ahead as that takes.

        Verifying is left to the consumer because a call that releases the GIL (BLAKE3 of a chunk,
        an LMDB get) waits to take it back for as long as another thread runs Python code: with
        thousands of small chunks hashed in workers while the consumer renders, the threads took
        turns at a crawl. A frame's decompression is one long call, worth handing to a worker."""
        known: dict[bytes, ChunkRecord] = {}  # the deltas' bases: looked up with each page, not one by one

        def looked_up() -> Iterator[tuple[bytes, ChunkRecord | None]]:
            remaining = iter(digests)
            size = FIRST_LOOKUP
            while page := list(itertools.islice(remaining, size)):
                records = [None if raw is None else ChunkRecord.decode(raw)
                           for raw in self.records.get_many(CHUNKS, page)]
                bases = list({r.base for r in records if r is not None and r.base is not None} - known.keys())
                if bases:
                    known.update((base, ChunkRecord.decode(raw))
                                 for base, raw in zip(bases, self.records.get_many(CHUNKS, bases)) if raw is not None)
                yield from zip(page, records)
                size = LOOKUP

        def frames(run: list[tuple[bytes, ChunkRecord | None]]) -> Iterator[Location]:
            """The frames a run reads: its own, and its deltas' bases'."""
            if run[0][1] is not None:
                yield run[0][1].location.frame
            for _, record in run:
                if record is not None and record.base is not None and record.base in known:
                    yield known[record.base].location.frame

        reader = self._reader
        runs = readahead.prefetching(_runs(looked_up()), frames, reader.prefetch,
                                     lambda frame: not reader.cached(frame), self._readers(), FRAMES_AHEAD, RUNS_AHEAD)
        for run in runs:
            yield from self._read_run(run, known)

    def _read_run(self, run: list[tuple[bytes, ChunkRecord | None]],
                  known: dict[bytes, ChunkRecord]) -> list[bytes | memoryview | None]:
        """A run of one frame: plain chunks with the frame looked up once; a run with a delta, an
        unknown chunk or a chunk that fails (moved by garbage collection, or corrupt), chunk by chunk."""
        if all(record is not None and record.base is None for _, record in run):
            try:
                return self._reader.read_run([(digest, record.location) for digest, record in run])
            except CorruptionError:
                pass  # read again one by one: a moved chunk is found where it went, else the error says which
        out: list[bytes | memoryview | None] = []
        for digest, record in run:
            if record is None:  # pending, written since the lookup, or unknown
                out.append(self.read_chunk(digest))
            else:
                out.append(self._read_record(digest, record, 0, known))
        return out

    def _readers(self) -> Workers:
        with self._pool_lock:
            if self._read_pool is None:
                self._read_pool = Workers(READ_WORKERS, "cairn-read")
            return self._read_pool

    def _read_delta(self, digest: bytes, record: ChunkRecord, depth: int,
                    known: dict[bytes, ChunkRecord] | None = None) -> bytes:
        """A delta chunk, verified. Its base is a plain chunk, unless two processes stored one
        chunk at once and the delta's record won: a chain, so its length is bounded."""
        if depth > MAX_DELTA_DEPTH:
            raise CorruptionError(f"chunk {B3Digest(digest)} is a delta more than {MAX_DELTA_DEPTH} deep")
        base = self._read(record.base, depth, known)
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
        raw = self.records.get(CHUNKS, digest)
        return None if raw is None else ChunkRecord.decode(raw)

    def _chunks_written(self, records: dict[bytes, ChunkRecord]) -> None:
        """Chunk locations wait for their pack to be put (one pack: they share a frame)."""
        packs = {record.location.pack for record in records.values()}
        self.records.hold(packs, {CHUNKS: [(d, record.encode()) for d, record in records.items()]})

    # -- lifecycle ---------------------------------------------------------------------

    def stored_bytes(self) -> int:
        """Bytes of committed packs (compressed, deduplicated data)."""
        return self.packs.stored_bytes()

    def close(self) -> None:
        """Release one reference; the last one commits what is staged and closes everything."""
        if self._release is not None and not self._release():
            return
        try:
            self.commit()
        finally:
            self._frames.shutdown()
            if self._read_pool is not None:
                self._read_pool.close()
            self._reader.clear()
            try:
                self.packs.close()
            finally:
                self.metadata.close()


def _runs(chunks: Iterable[tuple[bytes, ChunkRecord | None]]) -> Iterator[list[tuple[bytes, ChunkRecord | None]]]:
    """Consecutive chunks as runs stored in one frame (plain chunks, or the payloads of deltas;
    unknown chunks alone)."""
    run: list[tuple[bytes, ChunkRecord | None]] = []
    frame = None
    for digest, record in chunks:
        here = None if record is None else (record.location.pack, record.location.frame_offset)
        if run and (here is None or here != frame):
            yield run
            run = []
        run.append((digest, record))
        frame = here
    if run:
        yield run


def check_format(metadata: MetadataStore, params: ChunkingParams) -> None:
    """Record the format and chunking at creation; refuse a store made differently."""
    expected = {b"format": FORMAT, b"chunking": params.describe().encode()}
    recorded = metadata.get_many(META, list(expected))
    if None in recorded:
        metadata.commit({META: expected})  # insert-only: a concurrent creator's values stay
        recorded = metadata.get_many(META, list(expected))
    for (key, value), found in zip(expected.items(), recorded):
        if found != value:
            raise StoreFormatError(
                f"the store was created with {key.decode()} {found.decode(errors='replace')!r}, "
                f"this version uses {value.decode()!r}; refusing to open it (its chunks would not match)")


class EngineUser:
    """A service over the engine: holds one reference (see registry.py), shares its batch,
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
