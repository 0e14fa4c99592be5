"""The near/far blob cache: read near; on a miss copy the blob from far into near, then read it there.

Far is the source of truth and takes every write; near is disposable (a local disk in
front of a remote daemon, say). A blob is copied whole and verified by near's writer, so
near never holds a blob under another digest, and memory stays bounded by the stream.
"""

from __future__ import annotations

import contextlib
import io
from typing import Callable, Iterator

from castore.blobs.service import READ_SIZE, BlobService, BlobStat, BlobUsage, BlobWriter
from castore.digest import B3Digest
from castore.errors import CorruptionError


class CacheBlobService(BlobService):
    """Closing it leaves near and far open: the composition that built them closes them."""

    def __init__(self, near: BlobService, far: BlobService) -> None:
        self.near = near
        self.far = far
        self.concurrent_writes = far.concurrent_writes

    def has(self, digest: B3Digest) -> bool:
        return self.near.has(digest) or self.far.has(digest)

    def stat(self, digest: B3Digest) -> BlobStat | None:
        return self.near.stat(digest) or self.far.stat(digest)

    def open_read(self, digest: B3Digest) -> io.RawIOBase | None:
        reader = self.near.open_read(digest)
        if reader is None and self._fill(digest):
            reader = self.near.open_read(digest)
        return reader

    def read_all(self, digest: B3Digest) -> bytes | None:
        data = self.near.read_all(digest)
        if data is None and self._fill(digest):
            data = self.near.read_all(digest)
        return data

    def _fill(self, digest: B3Digest) -> bool:
        """Copy a blob from far into near; False when far does not have it either."""
        source = self.far.open_read(digest)
        if source is None:
            return False
        with source, self.near.open_write() as writer:
            while piece := source.read(READ_SIZE):
                writer.write(piece)
            copied = writer.close()
        if copied != digest:
            raise CorruptionError(f"far store returned blob {copied} for {digest}")
        return True

    def open_write(self) -> BlobWriter:
        return self.far.open_write()

    def batch(self) -> contextlib.AbstractContextManager[None]:
        stack = contextlib.ExitStack()
        stack.enter_context(self.near.batch())
        stack.enter_context(self.far.batch())
        return stack

    def stored_bytes(self) -> int | None:
        return self.far.stored_bytes()

    def usage(self) -> BlobUsage | None:
        return self.far.usage()

    def verify_all(self, progress: Callable[[int, int], None] | None = None) -> Iterator[CorruptionError] | None:
        return self.far.verify_all(progress)
