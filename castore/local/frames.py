"""Frames: neighbouring chunks compressed together as one zstd frame of a pack file.

Small files are one chunk each; compressing many of them together compresses far better
than a frame per chunk, and bounding the frame keeps a random read cheap (one frame to
decompress). Compression runs in worker threads (zstd releases the GIL), so an import
keeps every core busy even when it feeds one large blob. Frames go into packs (packs.py).
"""

from __future__ import annotations

import contextlib
import os
import struct
import threading
from collections import OrderedDict
from typing import Callable, NamedTuple, TypeVar

import blake3
import zstandard

from castore.digest import B3Digest
from castore.errors import BackendError, CorruptionError
from castore.local.packs import Packs, describe
from castore.local.workers import Workers


class FrameClass(NamedTuple):
    """How one kind of chunk is framed: zstd level and the frame's uncompressed bound.

    `delta_below`: a chunk of this class is kept as a delta (see deltas.py) only when the
    delta is smaller than this share of the chunk compressed alone; `delta_votes`: a delta is
    tried only against a chunk that shares this many sketch features with it.
    """

    level: int
    bound: int
    delta_below: float = 0.0
    delta_votes: int = 1


SMALL = FrameClass(level=9, bound=8 * 1024 * 1024, delta_below=0.2, delta_votes=2)
"""Whole small files and directories: mostly text, and neighbours say the same thing, so
big frames and a high level pay (~65 MB/s per core). The frame already finds much of what a
delta would (Django 5.0's own files gain nothing from deltas at shares above 0.2), so only
a delta of a fifth pays; and files sharing one feature are mostly alike only in their
boilerplate, so two are asked for (it saves as much, for a fraction of the trial encodings)."""
LARGE = FrameClass(level=5, bound=4 * 1024 * 1024, delta_below=0.8)
"""Pieces of chunked (large) files, mostly binaries: zstd levels 3-4 lose ~5% here and
higher levels gain little for their time; a cold random read decompresses one frame (~3 ms).

Measured on the seven corpus trees (`cairn castore import` of each into one store; packs
in MB, SMALL level/bound then LARGE level/bound): 5/2M 5/2M 26.87 (the single-class
baseline), 9/8M 3/2M 27.04, 9/8M 5/2M 26.17, 7/4M 5/2M 26.55, 9/8M 6/2M 25.70,
9/8M 5/4M 25.94, 12/8M 5/4M 25.89 (30% slower)."""
DIRECTORIES = FrameClass(level=9, bound=1024 * 1024)
"""Directory encodings, apart from file contents: fetching a tree's directories (a NAR's
layout, a mount's walk) then decompresses only directory frames, not the 8 MiB of small
files a directory would share a SMALL frame with. Never deltas (delta_below 0)."""
DELTA = FrameClass(level=1, bound=4 * 1024 * 1024)
"""Delta payloads: already zstd, so their frame only groups them (level 1 costs next to nothing)."""
FRAME_CACHE_BYTES = 128 * 1024 * 1024
"""Decompressed frames kept (see FrameReader): a bridge streaming 16 NARs at once reads more than
32 MiB of distinct frames, and below its working set every frame is decompressed again and again."""
MAX_FRAME = 64 * 1024 * 1024
"""No frame we write comes near this; a header claiming more is corrupt (and must not allocate it)."""
WORKERS = max(1, min(2, os.cpu_count() or 1))

Buffer = TypeVar("Buffer", bytes, memoryview)
_LOCATION = struct.Struct("<IQIII")
_DELTA = struct.Struct("<I32s")


class Location(NamedTuple):
    """Where a chunk's stored bytes live: a frame of a pack, and their slice of the decompressed
    frame. (Named tuples: a read decodes one or two per chunk, and they build fastest.)"""

    pack: int
    frame_offset: int
    frame_length: int
    offset: int
    length: int

    @property
    def frame(self) -> Location:
        """The location of the whole frame (no chunk's slice): one key for every chunk in it."""
        return Location(self.pack, self.frame_offset, self.frame_length, 0, 0)

    def encode(self) -> bytes:
        return _LOCATION.pack(*self)

    @classmethod
    def decode(cls, data: bytes) -> Location:
        return cls._make(_LOCATION.unpack(data))


class ChunkRecord(NamedTuple):
    """What the chunks database says of a chunk: where its stored bytes are, and for a delta
    (stored bytes shorter than the chunk), the plain chunk it refers to."""

    location: Location
    length: int
    base: bytes | None = None

    def encode(self) -> bytes:
        plain = self.location.encode()
        return plain if self.base is None else plain + _DELTA.pack(self.length, self.base)

    @classmethod
    def decode(cls, data: bytes) -> ChunkRecord:
        if len(data) == _LOCATION.size:
            location = Location._make(_LOCATION.unpack(data))
            return cls(location, location.length)
        location = Location._make(_LOCATION.unpack_from(data))
        length, base = _DELTA.unpack_from(data, _LOCATION.size)
        return cls(location, length, base)


class _Queued(NamedTuple):
    digest: bytes
    stored: bytes
    length: int
    base: bytes | None


class FrameWriter:
    """Collects chunks into the open frame; full frames are compressed and appended by workers.

    A chunk stays readable from memory (`pending`) until its frame is in a pack and
    `on_written` has staged its location, so there is no moment where it is nowhere.

    A frame that cannot be written (a full disk) loses its chunks: the next flush reports it,
    and the commit that called it discards what was staged since the last one (see
    Records.commit) and calls `reset`, after which writes start clean.
    """

    def __init__(self, packs: Packs, on_written: Callable[[dict[bytes, ChunkRecord]], None], *,
                 workers: int = WORKERS) -> None:
        self._packs = packs
        self._on_written = on_written
        self._cond = threading.Condition()
        self._open: dict[FrameClass, list[_Queued]] = {kind: [] for kind in (SMALL, LARGE, DIRECTORIES, DELTA)}
        self._open_size = dict.fromkeys(self._open, 0)
        self._pending: dict[bytes, bytes] = {}
        self._pending_bases: dict[bytes, bytes] = {}  # the pending chunks that are deltas: their bases
        self._inflight: set[int] = set()
        self._next_seq = 0
        self._failure: BaseException | None = None
        self._slots = threading.Semaphore(2 * workers)  # bounds the memory of frames in flight
        self._pool = Workers(workers, "cairn-frames")  # its threads start with the first frame: a reader writes none
        self._local = threading.local()

    def add(self, digest: bytes, data: bytes, kind: FrameClass = SMALL,
            delta: tuple[bytes, bytes] | None = None) -> None:
        """Queue a chunk for the pack (a chunk already pending is not queued twice); with
        `delta` = (base digest, payload), the payload is stored in a DELTA frame instead."""
        base, stored = delta if delta is not None else (None, data)
        kind = DELTA if delta is not None else kind
        with self._cond:
            if digest in self._pending:
                return
            self._pending[digest] = data
            if base is not None:
                self._pending_bases[digest] = base
            self._open[kind].append(_Queued(digest, stored, len(data), base))
            self._open_size[kind] += len(stored)
            sealed = [self._seal(kind)] if self._open_size[kind] >= kind.bound else []
        for frame in sealed:
            self._submit(*frame)

    def pending(self, digest: bytes) -> bytes | None:
        """A chunk's data while its location is not yet recorded."""
        return self._pending.get(digest)  # one dict lookup is atomic: no lock on the read path

    def pending_base(self, digest: bytes) -> bytes | None:
        """The base of a chunk pending as a delta; None for one pending plain, or not pending."""
        return self._pending_bases.get(digest)

    def flush(self) -> None:
        """Write the open frame and wait until every frame sealed so far has its locations recorded."""
        with self._cond:
            self._check()
            sealed = [self._seal(kind) for kind, chunks in self._open.items() if chunks]
            barrier = self._next_seq
        for frame in sealed:
            self._submit(*frame)
        with self._cond:
            self._cond.wait_for(lambda: not any(seq < barrier for seq in self._inflight))
            self._check()

    def reset(self) -> None:
        """Forget a failure once the commit it failed has discarded what was staged."""
        with self._cond:
            self._failure = None

    def shutdown(self) -> None:
        """Stop the workers once queued frames are written; the open frame, if any, is dropped."""
        self._pool.close()

    def _check(self) -> None:
        if self._failure is not None:
            raise BackendError(f"writing a pack frame failed: {describe(self._failure)}") from self._failure

    def _seal(self, kind: FrameClass) -> tuple[int, FrameClass, list[_Queued]]:
        """Take the open frame of a class (caller holds the condition's lock)."""
        seq = self._next_seq
        self._next_seq += 1
        chunks, self._open[kind], self._open_size[kind] = self._open[kind], [], 0
        self._inflight.add(seq)
        return seq, kind, chunks

    def _submit(self, seq: int, kind: FrameClass, chunks: list[_Queued]) -> None:
        self._slots.acquire()
        try:
            self._pool.submit(self._write, (seq, kind, chunks))
        except BaseException as e:
            self._finish(seq, chunks, e)
            raise

    def _write(self, sealed: tuple[int, FrameClass, list[_Queued]]) -> None:
        seq, kind, chunks = sealed
        try:
            frame = self._compressor(kind).compress(b"".join(c.stored for c in chunks))

            def placed(pack: int, frame_offset: int) -> None:
                locations, pos = {}, 0
                for c in chunks:
                    location = Location(pack, frame_offset, len(frame), pos, len(c.stored))
                    locations[c.digest] = ChunkRecord(location, c.length, c.base)
                    pos += len(c.stored)
                self._on_written(locations)

            self._packs.append(frame, placed)
        except BaseException as e:  # reported to every later writer, never swallowed
            self._finish(seq, chunks, e)
        else:
            self._finish(seq, chunks, None)

    def _finish(self, seq: int, chunks: list[_Queued], failure: BaseException | None) -> None:
        with self._cond:
            for c in chunks:
                self._pending.pop(c.digest, None)
                self._pending_bases.pop(c.digest, None)
            self._inflight.discard(seq)
            if failure is not None and self._failure is None:
                self._failure = failure
            self._cond.notify_all()
        self._slots.release()

    def _compressor(self, kind: FrameClass) -> zstandard.ZstdCompressor:
        """One compressor per worker thread and class (zstd contexts are not thread-safe)."""
        cctxs = self._local.__dict__.setdefault("cctxs", {})
        cctx = cctxs.get(kind)
        if cctx is None:
            cctx = cctxs[kind] = zstandard.ZstdCompressor(level=kind.level)
        return cctx


class FrameReader:
    """Reads chunks out of pack frames, each verified against its digest before it is returned.

    Decompressed frames are kept in a small LRU cache: neighbouring small files share a
    frame, and a blob read in order touches each frame several times.
    """

    def __init__(self, packs: Packs, cache_bytes: int = FRAME_CACHE_BYTES) -> None:
        self._packs = packs
        self._cache: OrderedDict[tuple[int, int], bytes] = OrderedDict()
        self._cache_size = 0
        self._cache_bytes = cache_bytes
        self._lock = threading.Lock()
        self._loading: dict[tuple[int, int], threading.Event] = {}
        self._local = threading.local()

    def read(self, digest: bytes, location: Location) -> memoryview:
        """A plain chunk, verified."""
        return verified(digest, self.stored(digest, location), location)

    def read_run(self, chunks: list[tuple[bytes, Location]]) -> list[memoryview]:
        """Plain chunks of one frame, each verified: the frame is looked up once for all of them."""
        digest, location = chunks[0]
        try:
            frame = memoryview(self._frame(location))
        except CorruptionError as e:
            raise CorruptionError(f"chunk {B3Digest(digest)}: {e}") from None
        return [verified(digest, frame[location.offset:location.offset + location.length], location)
                for digest, location in chunks]

    def cached(self, location: Location) -> bool:
        """Whether the frame is in the cache now (a hint: it may leave it at any moment)."""
        return (location.pack, location.frame_offset) in self._cache

    def prefetch(self, location: Location) -> None:
        """Have the frame in the cache; a frame that fails is reported when it is read."""
        with contextlib.suppress(CorruptionError, OSError):
            self._frame(location)

    def stored(self, digest: bytes, location: Location) -> memoryview:
        """The bytes stored for a chunk, as they are (a delta's payload), not verified: a view
        into the cached frame, since copying chunks out of frames costs as much as hashing them."""
        try:
            frame = self._frame(location)
        except CorruptionError as e:
            raise CorruptionError(f"chunk {B3Digest(digest)}: {e}") from None
        return memoryview(frame)[location.offset:location.offset + location.length]

    def clear(self) -> None:
        with self._lock:
            self._cache.clear()
            self._cache_size = 0

    def _frame(self, location: Location) -> bytes:
        """The decompressed frame, from the cache or decompressed once: a thread that misses on a
        frame another thread is decompressing waits for it (readers ahead and FUSE walks often
        want the same frame at once)."""
        key = (location.pack, location.frame_offset)
        with self._lock:
            frame = self._cache.get(key)
            if frame is not None:
                self._cache.move_to_end(key)
                return frame
            loading = self._loading.get(key)
            if loading is None:
                self._loading[key] = threading.Event()
        if loading is not None:
            loading.wait()
            with self._lock:
                frame = self._cache.get(key)
            return frame if frame is not None else self._decompressed(location)  # it failed: say why here too
        try:
            frame = self._decompressed(location)
            with self._lock:
                self._cache[key] = frame
                self._cache_size += len(frame)
                while self._cache_size > self._cache_bytes:
                    _, evicted = self._cache.popitem(last=False)
                    self._cache_size -= len(evicted)
            return frame
        finally:
            with self._lock:
                self._loading.pop(key).set()

    def _decompressed(self, location: Location) -> bytes:
        compressed = self._packs.read(location.pack, location.frame_offset, location.frame_length)
        try:
            claimed = zstandard.get_frame_parameters(compressed).content_size
            if not 0 <= claimed <= MAX_FRAME:
                raise zstandard.ZstdError(f"implausible content size {claimed}")
            return self._decompressor().decompress(compressed)
        except zstandard.ZstdError as e:
            raise CorruptionError(f"frame at offset {location.frame_offset} of pack {location.pack} "
                                  f"does not decompress: {e}") from None

    def _decompressor(self) -> zstandard.ZstdDecompressor:
        dctx = getattr(self._local, "dctx", None)
        if dctx is None:
            dctx = self._local.dctx = zstandard.ZstdDecompressor()
        return dctx


def verified(digest: bytes, data: Buffer, location: Location) -> Buffer:
    """`data` if it is the chunk `digest` names; CorruptionError (saying where it was) if not."""
    if blake3.blake3(data).digest() != digest:
        raise CorruptionError(f"chunk {B3Digest(digest)} in pack {location.pack} at frame offset "
                              f"{location.frame_offset} does not match its digest")
    return data
