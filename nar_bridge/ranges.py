"""Byte ranges of a NAR without reading what lies before them.

The renderer opens each file's blob once, in NAR order, and reads it from the start.
`SkippingBlobs` stands in for the blob service during a ranged render: knowing where
each file's contents lie (from the closure's layout), it hands out zeros instead of
reading files that end before the range, and seeks into the file the range starts in.
The zeros are dropped with the rest of what precedes the range, so a request for one
file near the end of a large NAR reads that file's chunks only.
"""

from __future__ import annotations

import io
from typing import Iterator

from castore.blobs.service import BlobService, BlobStat, BlobWriter
from castore.digest import B3Digest
from castore.errors import NotFoundError


class SkippingBlobs(BlobService):
    """A read-only view of `blobs` for one render whose output before `first` is dropped."""

    def __init__(self, blobs: BlobService, contents: tuple[tuple[int, int], ...], first: int) -> None:
        self._blobs = blobs
        self._contents: Iterator[tuple[int, int]] = iter(contents)
        self._first = first

    def open_read(self, digest: B3Digest) -> io.RawIOBase | None:
        offset, size = next(self._contents)  # the renderer opens files once each, in NAR order
        skip = min(max(self._first - offset, 0), size)
        if skip == size:  # before the range (or empty): nothing to read
            return _SkippedStart(None, size, size)
        if skip == 0:
            return self._blobs.open_read(digest)
        reader = self._blobs.open_read(digest)
        if reader is None:
            raise NotFoundError(f"blob {digest} not found")
        reader.seek(skip)
        return _SkippedStart(reader, skip, size)

    def has(self, digest: B3Digest) -> bool:
        return self._blobs.has(digest)

    def stat(self, digest: B3Digest) -> BlobStat | None:
        return self._blobs.stat(digest)

    def open_write(self) -> BlobWriter:
        raise TypeError("a ranged render only reads")


class _SkippedStart(io.RawIOBase):
    """`skip` zero bytes in place of a file's start, then the rest from `reader` (seeked past it)."""

    def __init__(self, reader: io.RawIOBase | None, skip: int, size: int) -> None:
        super().__init__()
        self._reader = reader
        self._zeros = skip
        self._left = size

    def readable(self) -> bool:
        return True

    def read(self, size: int | None = -1) -> bytes:
        n = self._left if size is None or size < 0 else min(size, self._left)
        if self._zeros:
            data = bytes(min(n, self._zeros))
            self._zeros -= len(data)
        else:
            data = self._reader.read(n) if self._reader is not None and n else b""
        self._left -= len(data)
        return data

    def close(self) -> None:
        if self._reader is not None:
            self._reader.close()
        super().close()
