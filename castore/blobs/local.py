"""The local blob backend: blobs as FastCDC chunk lists in the embedded engine.

A blob that is one chunk is stored as that chunk alone (its digest is the chunk's), so
the many small files of a tree cost one record each. A blob of several chunks also gets
a record in `blobs`: its size and chunk list, which stat reports and readers seek in.
"""

from __future__ import annotations

import collections
import io
import itertools
import struct
from typing import Callable, Generator, Iterable, Iterator, Sequence

import blake3

from castore.blobs.service import BlobService, BlobStat, BlobUsage, BlobWriter, ChunkMeta
from castore.digest import B3Digest
from castore.errors import CorruptionError
from castore.local.chunker import StreamChunker
from castore.local.engine import CHUNKS, EngineUser, LocalEngine
from castore.local.frames import LARGE, ChunkRecord
from castore.storage.metadata import Table

BLOBS = Table("blobs", insert_only=True)
"""Digest of a blob of several chunks -> its size and chunk list (encode_chunk_list)."""
FIRST_WINDOW = 32
READ_MANY_WINDOW = 4096
"""Blobs whose chunk lists read_many looks up at once: a few first, then windows of this many."""
_SIZE = struct.Struct("<Q")
_ENTRY = struct.Struct("<32sI")
_END = object()


def encode_chunk_list(size: int, chunks: list[tuple[bytes, int]]) -> bytes:
    return _SIZE.pack(size) + b"".join(_ENTRY.pack(d, n) for d, n in chunks)


def decode_chunk_list(digest: bytes, data: bytes) -> list[ChunkMeta]:
    (size,) = _SIZE.unpack_from(data)
    chunks = [ChunkMeta(B3Digest(d), n) for d, n in _ENTRY.iter_unpack(memoryview(data)[_SIZE.size:])]
    if sum(c.size for c in chunks) != size:
        raise CorruptionError(f"chunk list of blob {B3Digest(digest)} does not add up to its size {size}")
    return chunks


class LocalBlobService(EngineUser, BlobService):
    """Takes over one reference to the engine (see registry.py); close() releases it."""

    def has(self, digest: B3Digest) -> bool:
        return self.engine.records.get(BLOBS, digest) is not None or self.engine.has_chunk(digest)

    def has_many(self, digests: Sequence[B3Digest]) -> list[bool]:
        """Chunked blobs' records, then the chunks of the rest: two lookups of many keys."""
        keys = [bytes(d) for d in digests]
        chunked = self.engine.records.get_many(BLOBS, keys)
        rest = [k for k, record in zip(keys, chunked) if record is None]
        found = {k for k, ok in zip(rest, self.engine.has_chunks(rest)) if ok}
        return [record is not None or k in found for k, record in zip(keys, chunked)]

    def stat(self, digest: B3Digest) -> BlobStat | None:
        chunks = self._chunks(digest)
        if chunks is None:
            return None
        return BlobStat(sum(c.size for c in chunks), tuple(chunks) if len(chunks) > 1 else ())

    def open_read(self, digest: B3Digest) -> BlobReader | None:
        chunks = self._chunks(digest)
        return None if chunks is None else BlobReader(self.engine, chunks)

    def read_all(self, digest: B3Digest) -> bytes | None:
        """A blob of one chunk is that chunk: one lookup, no reader (half the cost for small files)."""
        data = self.engine.read_chunk(digest)
        return data if data is not None else super().read_all(digest)

    def read_many(self, digests: Iterable[B3Digest]) -> Generator[Iterable[bytes] | None, None, None]:
        """Every chunk of every blob through one engine.read_chunks, which decompresses frames
        ahead of the consumer in worker threads and reads `digests` only as far ahead as that
        takes. The blobs' chunk lists are looked up in windows, the first one small (its frames
        start decompressing while the next window is looked up), so memory does not grow with the
        number of blobs (a NAR of a million files)."""
        lists: collections.deque[list[ChunkMeta] | None] = collections.deque()  # looked up, not yet read

        def chunk_digests() -> Iterator[bytes]:
            remaining = iter(digests)
            size = FIRST_WINDOW
            while window := list(itertools.islice(remaining, size)):
                for digest, raw in zip(window, self.engine.records.get_many(BLOBS, window)):
                    listed = None if raw is None else decode_chunk_list(digest, raw)
                    if listed == []:  # a writer lists two chunks or more
                        raise CorruptionError(f"chunk list of blob {B3Digest(digest)} is empty")
                    lists.append(listed)
                    if listed is None:  # not a chunked blob: one chunk, or not held
                        yield bytes(digest)
                    else:
                        yield from (bytes(c.digest) for c in listed)
                size = READ_MANY_WINDOW

        chunks = self.engine.read_chunks(chunk_digests())
        try:
            # Every blob has a chunk at least, and its list is looked up before its first chunk is read.
            while (first := next(chunks, _END)) is not _END:
                listed = lists.popleft()
                if listed is None:
                    yield None if first is None else (first,)
                else:
                    pieces = _chunked(listed, first, chunks)
                    yield pieces
                    collections.deque(pieces, maxlen=0)  # what the consumer left unread
        finally:
            chunks.close()

    def open_write(self) -> LocalBlobWriter:
        return LocalBlobWriter(self.engine)

    def stored_bytes(self) -> int:
        return self.engine.stored_bytes()

    def usage(self) -> BlobUsage:
        """Walks both databases once; what is staged is committed first so it counts."""
        engine = self.engine
        engine.commit()
        listed: set[bytes] = set()
        chunked = 0
        for digest, record in engine.records.items(BLOBS):
            chunked += 1
            listed.update(bytes(c.digest) for c in decode_chunk_list(digest, record))
        chunks = chunk_bytes = single = deltas = 0
        for digest, raw in engine.records.items(CHUNKS):
            record = ChunkRecord.decode(raw)
            chunks += 1
            chunk_bytes += record.length
            single += digest not in listed
            deltas += record.base is not None
        return BlobUsage(chunked, single, chunks, deltas, chunk_bytes, engine.stored_bytes(),
                         engine.metadata.size_bytes())

    def verify_all(self, progress: Callable[[int, int], None] | None = None) -> Iterator[CorruptionError]:
        self.engine.commit()
        return self._verify_chunks(progress)

    def _verify_chunks(self, progress: Callable[[int, int], None] | None) -> Iterator[CorruptionError]:
        """Reads chunks in pack order, so each frame is decompressed about once (at the cost of
        holding every chunk's location in memory)."""
        chunks = sorted(((ChunkRecord.decode(raw), digest) for digest, raw in self.engine.records.items(CHUNKS)),
                        key=lambda c: (c[0].location.pack, c[0].location.frame_offset, c[0].location.offset))
        total = sum(record.length for record, _ in chunks)
        done = 0
        for record, digest in chunks:
            try:
                self.engine.read_chunk(digest)
            except CorruptionError as e:
                yield e
            except OSError as e:
                yield CorruptionError(f"chunk {B3Digest(digest)} in pack {record.location.pack}: {e}")
            done += record.length
            if progress:
                progress(done, total)

    def _chunks(self, digest: B3Digest) -> list[ChunkMeta] | None:
        """The chunk list of a blob; a chunk digest (or a one-chunk blob) lists itself.

        Chunks are looked up first: most blobs are one chunk, and a chunked blob's digest
        is never a chunk's.
        """
        digest = B3Digest(digest)
        length = self.engine.chunk_length(digest)
        if length is not None:
            return [ChunkMeta(digest, length)]
        record = self.engine.records.get(BLOBS, digest)
        return None if record is None else decode_chunk_list(digest, record)


class LocalBlobWriter(BlobWriter):
    """Chunks, hashes and queues data as it arrives: memory stays bounded whatever the size."""

    def __init__(self, engine: LocalEngine) -> None:
        self._engine = engine
        self._chunker = StreamChunker(engine.params)
        self._hasher = blake3.blake3()
        self._chunks: list[tuple[bytes, int]] = []
        self._size = 0
        self._digest: B3Digest | None = None
        self._aborted = False

    def write(self, data: bytes | memoryview) -> int:
        if self._digest is not None or self._aborted:
            raise ValueError("write to a closed blob writer")
        for chunk in self._chunker.feed(data):
            self._store(chunk)
        return len(data)

    def close(self) -> B3Digest:
        """The digest; the blob is durable on return unless this thread is in a batch."""
        if self._aborted:
            raise ValueError("close of an aborted blob writer")
        if self._digest is not None:
            return self._digest
        tail = self._chunker.finish()
        if not self._chunks and len(tail) <= 1:
            data = tail[0] if tail else b""
            digest = B3Digest.of(data)
            self._engine.add_chunk(digest, data)
        else:
            for chunk in tail:
                self._store(chunk)
            digest = B3Digest(self._hasher.digest())
            if self._engine.records.get(BLOBS, digest, swept=False) is None:
                self._engine.records.stage(BLOBS, [(digest, encode_chunk_list(self._size, self._chunks))])
        self._engine.records.settle()
        self._digest = digest
        return digest

    def abort(self) -> None:
        """Drop what was buffered; chunks already queued stay as unreferenced chunks."""
        self._aborted = True
        self._chunker = StreamChunker(self._engine.params)
        self._chunks = []

    def _store(self, chunk: bytes) -> None:
        digest = blake3.blake3(chunk).digest()
        self._hasher.update(chunk)
        self._engine.add_chunk(digest, chunk, LARGE)
        self._chunks.append((digest, len(chunk)))
        self._size += len(chunk)


class BlobReader(io.RawIOBase):
    """A seekable reader over a chunk list: a read fetches (and verifies) only the chunks it covers."""

    def __init__(self, engine: LocalEngine, chunks: list[ChunkMeta]) -> None:
        super().__init__()
        self._engine = engine
        self._chunks = chunks
        self._starts = list(itertools.accumulate((c.size for c in chunks), initial=0))
        self._size = self._starts[-1]
        self._pos = 0
        self._current: tuple[int, bytes] = (-1, b"")

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        self._check_open()
        return self._pos

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        self._check_open()
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self._pos, io.SEEK_END: self._size}.get(whence)
        if base is None:
            raise ValueError(f"invalid whence {whence}")
        if base + offset < 0:
            raise ValueError(f"negative seek position {base + offset}")
        self._pos = base + offset
        return self._pos

    def read(self, size: int | None = -1) -> bytes:
        self._check_open()
        end = self._size if size is None or size < 0 else min(self._size, self._pos + size)
        parts = []
        while self._pos < end:
            data, start = self._chunk_at(self._pos)
            piece = data[self._pos - start:min(end, start + len(data)) - start]
            parts.append(piece)
            self._pos += len(piece)
        return parts[0] if len(parts) == 1 else b"".join(parts)

    def readall(self) -> bytes:
        return self.read()

    def readinto(self, buffer) -> int:
        with memoryview(buffer) as view, view.cast("B") as out:
            data = self.read(len(out))
            out[:len(data)] = data
            return len(data)

    def close(self) -> None:
        self._current = (-1, b"")
        super().close()

    def _check_open(self) -> None:
        if self.closed:
            raise ValueError("I/O operation on a closed blob reader")

    def _chunk_at(self, pos: int) -> tuple[bytes, int]:
        """The chunk holding byte `pos` and its start; the last one is kept for small reads."""
        import bisect  # only a seekable reader needs it: not loaded by `cairn dump`

        index = bisect.bisect_right(self._starts, pos) - 1
        if self._current[0] != index:
            self._current = (index, read_listed_chunk(self._engine, self._chunks[index]))
        return self._current[1], self._starts[index]


def read_listed_chunk(engine: LocalEngine, meta: ChunkMeta) -> bytes:
    """A chunk a blob's chunk list names, verified."""
    return _listed(meta, engine.read_chunk(meta.digest))


def _chunked(listed: list[ChunkMeta], first: bytes | memoryview | None,
             chunks: Iterator[bytes | memoryview | None]) -> Iterator[bytes | memoryview]:
    """The pieces of a chunked blob whose first chunk was read already."""
    yield _listed(listed[0], first)
    for meta in listed[1:]:
        yield _listed(meta, next(chunks))


def _listed(meta: ChunkMeta, data: bytes | None) -> bytes:
    """`data` read for a chunk a blob's chunk list names: its absence or another size is corruption."""
    if data is None:
        raise CorruptionError(f"chunk {meta.digest} of a blob is missing from the store")
    if len(data) != meta.size:
        raise CorruptionError(f"chunk {meta.digest} has {len(data)} bytes, its blob lists {meta.size}")
    return data
