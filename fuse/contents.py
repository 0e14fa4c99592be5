"""File contents for the mount: byte ranges of blobs, fetched piece by piece, cached, read ahead.

A blob is read in pieces. A file of up to WHOLE bytes (most files of a package tree) is
one piece, fetched with a single backend call: the kernel asks for that much at once
anyway. A larger blob is read by its chunks as BlobService.stat lists them, or in windows
of WINDOW bytes when the backend keeps it as one piece; either way through the seekable
reader of BlobService, so a read at offset X fetches only the pieces covering X.

Pieces are cached by what they are (a chunk digest, or a blob digest and offset), so
files sharing chunks share the cache. Every fetch runs in a worker thread. Work ahead of
demand runs in the background (fuse.background): the next pieces of a file read
sequentially, and the small files of a directory just opened.
"""

from __future__ import annotations

import bisect
import io
import itertools
import operator
from dataclasses import dataclass
from typing import Iterable

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
PREFETCH_BYTES = 4 << 20
"""Small files of one directory fetched ahead when it is opened, at most."""


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
    """The pieces of one blob, in order, and where each begins in it."""

    __slots__ = ("pieces", "starts")

    def __init__(self, pieces: tuple[Piece, ...]) -> None:
        self.pieces = pieces
        self.starts = list(itertools.accumulate((p.size for p in pieces), initial=0))

    @classmethod
    def windows(cls, digest: B3Digest, size: int) -> Layout:
        return cls(tuple(Piece(digest, s, min(WINDOW, size - s)) for s in range(0, size, WINDOW)))

    def covering(self, start: int, end: int) -> range:
        """Indices of the pieces holding bytes start..end-1."""
        return range(bisect.bisect_right(self.starts, start) - 1, bisect.bisect_left(self.starts, end))


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
            layout = await self._layout(node)
            wanted = layout.covering(offset, end)
            parts = await self._fetch_all([layout.pieces[i] for i in wanted])
        except CastoreError as e:  # say which file, not only which chunk
            raise type(e)(f"reading {end - offset} bytes at {offset} of blob {node.digest}: {e}") from None
        if len(parts) == 1:
            begin = layout.starts[wanted[0]]
            return parts[0][offset - begin:end - begin]
        return b"".join(memoryview(data)[max(offset - begin, 0):end - begin]
                        for data, begin in zip(parts, (layout.starts[i] for i in wanted)))

    def read_ahead(self, node: FileNode, offset: int, length: int) -> None:
        """Fetch the pieces of offset..offset+length in the background."""
        self._background.start(self._fetch_ahead, node, offset, min(offset + length, node.size))

    def prefetch(self, files: Iterable[FileNode]) -> None:
        """Fetch small files whole in the background: the files of a directory just opened are
        usually read next (a NAR dump, a hash, a copy), and one thread call then serves many."""
        pieces, total = [], 0
        for f in files:
            piece = Piece(f.digest, 0, f.size)
            if 0 < f.size <= WHOLE and total < PREFETCH_BYTES and piece.key not in self._pieces:
                pieces.append(piece)
                total += f.size
        if pieces:
            self._background.start(self._fill, pieces)

    async def _fetch_ahead(self, node: FileNode, start: int, end: int) -> None:
        layout = await self._layout(node)
        await self._fill([layout.pieces[i] for i in layout.covering(start, end)])

    async def _fill(self, pieces: list[Piece]) -> None:
        await self._pieces.fill(pieces, operator.attrgetter("key"), self._fetch_piece, self._background.limiter)

    async def _layout(self, node: FileNode) -> Layout:
        if node.size <= WHOLE:
            return Layout.windows(node.digest, node.size)
        return await self._layouts.get(node.digest, lambda: self._fetch_layout(node), self._limiter)

    async def _fetch_all(self, pieces: list[Piece]) -> list[bytes]:
        """The pieces' bytes, fetched concurrently; the first error is raised."""
        if len(pieces) == 1:
            return [await self._piece(pieces[0])]
        results: list[bytes] = [b""] * len(pieces)
        errors: list[Exception] = []

        async def fetch(i: int) -> None:
            try:
                results[i] = await self._piece(pieces[i])
            except Exception as e:
                errors.append(e)

        async with trio.open_nursery() as nursery:
            for i in range(len(pieces)):
                nursery.start_soon(fetch, i)
        if errors:
            raise errors[0]
        return results

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
        return Layout(tuple(Piece(c.digest, 0, c.size) for c in stat.chunks))

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


def _read_exactly(reader: io.RawIOBase, size: int) -> bytes:
    """`size` bytes, or fewer at the end: a raw reader may return less than asked."""
    parts = []
    while size > 0 and (part := reader.read(size)):
        parts.append(part)
        size -= len(part)
    return parts[0] if len(parts) == 1 else b"".join(parts)


class OpenFile:
    """One open() of a file: reads through BlobContents, and reads ahead when reading sequentially."""

    def __init__(self, contents: BlobContents, node: FileNode) -> None:
        self.node = node
        self._contents = contents
        self._next = 0

    async def read(self, offset: int, size: int) -> bytes:
        end = offset + size
        if offset == self._next and end < self.node.size:
            self._contents.read_ahead(self.node, end, READAHEAD_BYTES)
        self._next = end
        return await self._contents.read(self.node, offset, size)
