"""Small blobs uploaded many at a time, for backends that answer each write only once it is durable.

A backend that offers write_many (a Cairn daemon: one PutMany stream, one commit per sync)
gets them all in one stream, synced by wait(), larger ones in pieces (open_write), and finish()
sends the tree's directories after them in the same stream, so one commit covers the tree;
others as below.

A remote daemon syncs every Put before it answers, so a tree uploaded one file at a time
waits for a disk sync per file: Django's 3,653 files took 8.8 s over a unix socket against
0.66 s into the local store. With many Puts in flight, one commit of the daemon serves
several. Only contents already in memory go ahead (up to IN_FLIGHT of SMALL bytes at most);
their digests are computed here, so an import walks on at once, and wait() confirms every
upload before the caller puts the directories that name them.
"""

from __future__ import annotations

import collections
from concurrent.futures import Future, ThreadPoolExecutor
from typing import TYPE_CHECKING, Sequence

from castore.blobs.service import BlobService, BlobWriter
from castore.digest import B3Digest
from castore.errors import CorruptionError

if TYPE_CHECKING:
    from castore.directories.service import DirectoryService
    from castore.nodes import Directory

IN_FLIGHT = 32
SMALL = 1 << 20
"""Files up to this size are read whole and may be uploaded ahead; larger ones stream in place."""


def write_blob(blobs: BlobService, data: bytes) -> B3Digest:
    with blobs.open_write() as writer:
        writer.write(data)
        return writer.close()


class Uploads:
    """Writes of in-memory blobs: ahead in worker threads where the backend gains from it, else in place."""

    def __init__(self, blobs: BlobService) -> None:
        self._blobs = blobs
        self._stream = blobs.write_many()
        self._pool = ThreadPoolExecutor(IN_FLIGHT, thread_name_prefix="cairn-upload") \
            if self._stream is None and blobs.concurrent_writes else None
        self._pending: collections.deque[tuple[Future[B3Digest], B3Digest]] = collections.deque()

    def put(self, data: bytes) -> B3Digest:
        """The blob's digest; with a pool, the upload may still be under way (see wait)."""
        if self._stream is not None:
            return self._stream.put(data)
        if self._pool is None:
            return write_blob(self._blobs, data)
        digest = B3Digest.of(data)
        if len(self._pending) >= IN_FLIGHT:
            self._confirm(*self._pending.popleft())
        self._pending.append((self._pool.submit(write_blob, self._blobs, data), digest))
        return digest

    def open_write(self) -> BlobWriter:
        """A writer of a blob too large to hold: in the stream when there is one (so the commit
        that makes the others durable covers it too), else the backend's own."""
        return self._blobs.open_write() if self._stream is None else self._stream.open_write()

    def wait(self) -> None:
        """Return once every upload is stored; raise the first failure."""
        if self._stream is not None:
            self._stream.wait()
        while self._pending:
            self._confirm(*self._pending.popleft())

    def finish(self, directories: Sequence[Directory], service: DirectoryService) -> None:
        """Confirm every upload, then put `directories` (a leaves-first closure naming them)
        through `service`: with the blobs, in one commit, when the stream can carry them."""
        if self._stream is not None:
            self._stream.finish(directories, service)
            return
        self.wait()
        if directories:
            service.put(directories)

    def close(self) -> None:
        """Stop: uploads not started are dropped (call wait() first to keep them)."""
        if self._stream is not None:
            self._stream.close()
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)

    def __enter__(self) -> Uploads:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    @staticmethod
    def _confirm(upload: Future[B3Digest], digest: B3Digest) -> None:
        stored = upload.result()
        if stored != digest:
            raise CorruptionError(f"the blob service stored {stored} for a blob whose digest is {digest}")
