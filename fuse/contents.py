"""File contents for the mount: byte ranges of blobs, fetched piece by piece, cached, read ahead.

A blob is read in pieces. A file of up to WHOLE bytes (most files of a package tree) is
one piece, fetched with a single backend call: the kernel asks for that much at once
anyway. A larger blob is read by its chunks as BlobService.stat lists them, or in windows
of WINDOW bytes when the backend keeps it as one piece; either way through the seekable
reader of BlobService, so a read at offset X fetches only the pieces covering X.

Pieces are cached by what they are (a chunk digest, or a blob digest and offset), so
files sharing chunks share the cache. Every fetch runs in a worker thread. Work ahead of
demand runs in the background (fuse.background): the next pieces of a file read
sequentially here, and the first pieces of the files of a tree being walked (fuse.walk).
Chunks read ahead go through BlobService.read_many in one call, so the backend reads
ahead within them (the local store decompresses the next frames in threads of its own)
while each chunk reaches the cache as soon as it is read.
"""

from __future__ import annotations

import bisect
import io
import itertools
import operator
from dataclasses import dataclass
from typing import Generator

import trio

from castore.blobs.service import BlobService
from castore.digest import B3Digest
from castore.errors import CastoreError, CorruptionError, NotFoundError
from castore.nodes import FileNode
from fuse.background import Background
from fuse.cache import AsyncCache

WHOLE = 128 * 1024
"""Files up to this size are fetched whole, without asking for their chunk list first."""
WINDOW = 1 << 20
"""Piece size of a large blob the backend does not list chunks for."""
CACHE_BYTES = 64 << 20
"""Bytes of pieces kept: the working set of a few sequential readers and their read-ahead."""
LAYOUT_PIECES = 1 << 20
"""Pieces of cached layouts, summed (a 100 MiB blob has ~1600)."""
READAHEAD_BYTES = 8 << 20
"""How far ahead of a sequential reader pieces are fetched: several compressed frames of the
local store, decompressed by the background threads while the reader consumes earlier ones."""


@dataclass(frozen=True, slots=True)
class Piece:
    """`size` bytes at `start` of the blob (or chunk) `source`."""

    source: B3Digest
    start: int
    size: int

    @property
    def key(self) -> tuple[B3Digest, int]:
        return self.source, self.start


class Layout:
    """The pieces of one blob, in order, and where each begins in it; `chunked` when they are
    whole chunks (blobs of their own) rather than windows of the blob."""

    __slots__ = ("pieces", "starts", "chunked")

    def __init__(self, pieces: tuple[Piece, ...], chunked: bool) -> None:
        self.pieces = pieces
        self.starts = list(itertools.accumulate((p.size for p in pieces), initial=0))
        self.chunked = chunked

    @classmethod
    def windows(cls, digest: B3Digest, size: int) -> Layout:
        return cls(tuple(Piece(digest, s, min(WINDOW, size - s)) for s in range(0, size, WINDOW)), False)

    def covering(self, start: int, end: int) -> range:
        """Indices of the pieces holding bytes start..end-1."""
        return range(bisect.bisect_right(self.starts, start) - 1, bisect.bisect_left(self.starts, end))


@dataclass(frozen=True, slots=True)
class Head:
    """The start of a blob, fetched ahead of demand (see fuse.walk)."""

    digest: B3Digest
    layout: Layout | None
    pieces: list[tuple[tuple[B3Digest, int], bytes]]

    @property
    def size(self) -> int:
        return sum(len(data) for _, data in self.pieces)


class BlobContents:
    def __init__(self, blobs: BlobService, limiter: trio.CapacityLimiter, background: Background) -> None:
        self._blobs = blobs
        self._limiter = limiter
        self._background = background
        self._pieces: AsyncCache[tuple[B3Digest, int], bytes] = AsyncCache(CACHE_BYTES, len)
        self._layouts: AsyncCache[B3Digest, Layout] = AsyncCache(LAYOUT_PIECES, lambda l: len(l.pieces))

    async def read(self, node: FileNode, offset: int, size: int) -> bytes:
        """Up to `size` bytes at `offset`; fewer only at the end of the file."""
        end = min(offset + size, node.size)
        if offset >= end:
            return b""
        try:
            if self.is_whole(node):  # most reads: one piece, no layout to look at
                whole = await self._pieces.get((node.digest, 0), lambda: self._fetch_whole(node), self._limiter)
                return whole[offset:end]
            return await self._read_pieces(node, offset, end)
        except CastoreError as e:  # say which file, not only which chunk
            raise type(e)(f"reading {end - offset} bytes at {offset} of blob {node.digest}: {e}") from None

    def read_ahead(self, node: FileNode, offset: int, length: int) -> bool:
        """Fetch the pieces of offset..offset+length in the background; whether that was started."""
        return self._background.start(self._fetch_ahead, node, offset, min(offset + length, node.size))

    @staticmethod
    def is_whole(node: FileNode) -> bool:
        """Whether the file is one piece (most are)."""
        return 0 < node.size <= WHOLE

    def cached_whole(self, node: FileNode) -> bytes | None:
        """The bytes of a file that is one piece, if they are in memory."""
        return self._pieces.peek((node.digest, 0)) if self.is_whole(node) else None

    def fetch_head(self, node: FileNode, size: int) -> Head:
        """In a worker thread, ahead of demand: the pieces holding the first `size` bytes, and the
        layout of a file that is not one piece."""
        if self.is_whole(node):
            return Head(node.digest, None, [((node.digest, 0), self._fetch_whole(node))])
        layout = self._fetch_layout(node)
        pieces = [layout.pieces[i] for i in layout.covering(0, min(size, node.size))]
        return Head(node.digest, layout, [(p.key, self._fetch_piece(p)) for p in pieces])

    def keep(self, head: Head) -> None:
        """Keep what fetch_head fetched."""
        if head.layout is not None:
            self._layouts.put(head.digest, head.layout)
        for key, data in head.pieces:
            self._pieces.put(key, data)

    async def _read_pieces(self, node: FileNode, offset: int, end: int) -> bytes:
        layout = await self._layout(node)
        wanted = layout.covering(offset, end)
        parts = await self._fetch_all([layout.pieces[i] for i in wanted])
        if len(parts) == 1:
            begin = layout.starts[wanted[0]]
            return parts[0][offset - begin:end - begin]
        return b"".join(memoryview(data)[max(offset - begin, 0):end - begin]
                        for data, begin in zip(parts, (layout.starts[i] for i in wanted)))

    async def _fetch_ahead(self, node: FileNode, start: int, end: int) -> None:
        layout = await self._layout(node)
        fetch = self._fetch_chunks if layout.chunked else self._fetch_each
        await self._pieces.fill([layout.pieces[i] for i in layout.covering(start, end)], operator.attrgetter("key"),
                                fetch, self._background.limiter)

    async def _layout(self, node: FileNode) -> Layout:
        if node.size <= WHOLE:
            return Layout.windows(node.digest, node.size)
        return await self._layouts.get(node.digest, lambda: self._fetch_layout(node), self._limiter)

    async def _fetch_all(self, pieces: list[Piece]) -> list[bytes]:
        """The pieces' bytes, the missing ones fetched concurrently; the first error is raised.

        Pieces read ahead are mostly all cached: then no task is started and no checkpoint passed,
        so the reply goes out without a turn of the scheduler."""
        results = [self._pieces.get_cached(p.key) for p in pieces]
        missing = [i for i, data in enumerate(results) if data is None]
        if len(missing) == 1:
            results[missing[0]] = await self._piece(pieces[missing[0]])
        elif missing:
            errors: list[Exception] = []

            async def fetch(i: int) -> None:
                try:
                    results[i] = await self._piece(pieces[i])
                except Exception as e:
                    errors.append(e)

            async with trio.open_nursery() as nursery:
                for i in missing:
                    nursery.start_soon(fetch, i)
            if errors:
                raise errors[0]
        return results  # type: ignore[return-value]  # none is None any more

    async def _piece(self, piece: Piece) -> bytes:
        return await self._pieces.get(piece.key, lambda: self._fetch_piece(piece), self._limiter)

    # -- worker threads ------------------------------------------------------------------

    def _fetch_layout(self, node: FileNode) -> Layout:
        stat = self._blobs.stat(node.digest)
        if stat is None:
            raise NotFoundError(f"blob {node.digest} not found")
        if stat.size != node.size:
            raise CorruptionError(f"blob {node.digest} has {stat.size} bytes, its file node says {node.size}")
        if not stat.chunks:
            return Layout.windows(node.digest, node.size)
        return Layout(tuple(Piece(c.digest, 0, c.size) for c in stat.chunks), True)

    def _fetch_whole(self, node: FileNode) -> bytes:
        data = self._blobs.read_all(node.digest)
        if data is None:
            raise NotFoundError(f"blob {node.digest} not found")
        if len(data) != node.size:
            raise CorruptionError(f"blob {node.digest} has {len(data)} bytes, its file node says {node.size}")
        return data

    def _fetch_piece(self, piece: Piece) -> bytes:
        reader = self._blobs.open_read(piece.source)
        if reader is None:
            raise NotFoundError(f"blob {piece.source} not found")
        with reader:
            if piece.start:
                reader.seek(piece.start)
            data = _read_exactly(reader, piece.size)
        if len(data) != piece.size:
            raise CorruptionError(f"blob {piece.source} ended {piece.size - len(data)} bytes early "
                                  f"(reading {piece.size} at {piece.start})")
        return data


    def _fetch_chunks(self, pieces: list[Piece]) -> Generator[bytes | None, None, None]:
        """Whole chunks in order, through one read_many; None for one missing or of the wrong size."""
        chunks = self._blobs.read_many([p.source for p in pieces])
        try:
            for piece, parts in zip(pieces, chunks):
                data = None if parts is None else b"".join(parts)  # a copy: a view would pin its whole frame
                yield data if data is not None and len(data) == piece.size else None
        finally:
            chunks.close()  # stops the backend's reading ahead

    def _fetch_each(self, pieces: list[Piece]) -> Generator[bytes | None, None, None]:
        """Pieces in order, one backend call each; None for one that failed."""
        for piece in pieces:
            try:
                yield self._fetch_piece(piece)
            except Exception:
                yield None


def _read_exactly(reader: io.RawIOBase, size: int) -> bytes:
    """`size` bytes, or fewer at the end: a raw reader may return less than asked."""
    parts = []
    while size > 0 and (part := reader.read(size)):
        parts.append(part)
        size -= len(part)
    return parts[0] if len(parts) == 1 else b"".join(parts)


class OpenFile:
    """One open() of a file: reads through BlobContents, and reads ahead when reading sequentially.

    Reading ahead is asked for again once the reader is halfway through what was asked for,
    not at every read: one background task fetches many pieces.
    """

    def __init__(self, contents: BlobContents, node: FileNode) -> None:
        self.node = node
        self._contents = contents
        self._next = 0
        self._ahead = 0

    async def read(self, offset: int, size: int) -> bytes:
        end = offset + size
        if offset == self._next and end < self.node.size and self._ahead - end < READAHEAD_BYTES // 2:
            start = max(end, self._ahead)
            if self._contents.read_ahead(self.node, start, end + READAHEAD_BYTES - start):
                self._ahead = end + READAHEAD_BYTES
        self._next = end
        return await self._contents.read(self.node, offset, size)
