"""The BlobService interface: what every blob backend offers, whatever stores the bytes."""

from __future__ import annotations

import contextlib
import functools
import io
from abc import ABC, abstractmethod
from typing import TYPE_CHECKING, Callable, Generator, Iterable, Iterator, NamedTuple, Sequence

from castore.digest import B3Digest
from castore.errors import CorruptionError

if TYPE_CHECKING:
    from castore.directories.service import DirectoryService
    from castore.nodes import Directory

READ_SIZE = 1 << 20
"""Bytes asked of a reader at a time when a blob is read through."""


class ChunkMeta(NamedTuple):
    digest: B3Digest
    size: int


class BlobStat(NamedTuple):
    """What Stat reports: the size and, for chunked blobs, the chunk list.

    An empty chunk list means the blob is stored as one piece.
    """

    size: int
    chunks: tuple[ChunkMeta, ...] = ()


class BlobUsage(NamedTuple):
    """What a backend holds and what it costs, for whole-store figures (`cairn stats`).

    `standalone_chunks` counts chunks that no chunk list names: blobs stored as one piece,
    and whatever else a backend keeps as chunks (the local one keeps directories so).
    """

    chunked_blobs: int
    standalone_chunks: int
    chunks: int
    delta_chunks: int
    """Chunks stored as deltas against a similar chunk (the local backend, see castore/local/deltas.py)."""
    chunk_bytes: int
    """Sum of chunk lengths: the logical, deduplicated size."""
    pack_bytes: int
    """Bytes of stored (compressed) data."""
    index_bytes: int
    """Bytes of the records naming the data (the local backend's LMDB file, shared with the
    other services of the store)."""

    @property
    def stored_bytes(self) -> int:
        return self.pack_bytes + self.index_bytes


class BlobWriter(ABC):
    """Accepts a blob's bytes in pieces of any size; close() hashes, stores and returns the digest.

    Once close() returns, the blob is durable. A writer dropped without close()
    (or aborted) leaves nothing that any reader can see.
    """

    @abstractmethod
    def write(self, data: bytes | memoryview) -> int: ...

    @abstractmethod
    def close(self) -> B3Digest: ...

    def abort(self) -> None:
        """Discard what was written. Default: nothing to discard."""

    def __enter__(self) -> BlobWriter:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is not None:
            self.abort()


class BlobBatchWriter(ABC):
    """Sends many in-memory blobs in one stream; they are durable once wait() returns."""

    @abstractmethod
    def put(self, data: bytes) -> B3Digest:
        """Send a blob (it may wait while the backend catches up); returns its digest."""

    @abstractmethod
    def open_write(self) -> BlobWriter:
        """A writer of one blob too large to hold in memory, sent in the stream in pieces; its
        close() returns the digest, acknowledged as put()'s are (by wait())."""

    @abstractmethod
    def wait(self) -> None:
        """Return once every blob put so far is durable; raise if one is not."""

    def finish(self, directories: Sequence[Directory], service: DirectoryService) -> None:
        """Make every blob put durable, then store `directories` (a leaves-first closure that may
        name them) through `service`: the last call before close(). A writer into the store that
        `service` writes to may send them along instead, so one commit covers blobs and directories."""
        self.wait()
        if directories:
            service.put(directories)

    @abstractmethod
    def close(self) -> None:
        """End the stream; blobs put since the last wait() may or may not be stored."""


class BlobService(ABC):
    """Blobs addressed by the BLAKE3 of their contents; chunking never changes a digest."""

    concurrent_writes = False
    """Whether many writes in flight at once finish sooner than one after another (a remote
    service that syncs each before it answers); see castore.uploads."""

    @abstractmethod
    def has(self, digest: B3Digest) -> bool: ...

    def has_many(self, digests: Sequence[B3Digest]) -> list[bool]:
        """has() of each: a NAR's every blob is checked before its headers, so a backend answers
        them in one query where it can."""
        return [self.has(d) for d in digests]

    @abstractmethod
    def stat(self, digest: B3Digest) -> BlobStat | None:
        """Size and chunk list, or None when the blob is unknown."""

    @abstractmethod
    def open_read(self, digest: B3Digest) -> io.RawIOBase | None:
        """A seekable binary reader, or None when unknown.

        A chunk digest (from a chunk list) opens that single chunk.
        Data is verified against its digest before it is returned.
        """

    def read_all(self, digest: B3Digest) -> bytes | None:
        """A whole blob in memory, verified; None when unknown. For small blobs, which many
        callers (a mount's walk) read whole: a backend may skip the reader. Default: open_read."""
        reader = self.open_read(digest)
        if reader is None:
            return None
        with reader:
            return reader.read()

    def read_many(self, digests: Iterable[B3Digest]) -> Generator[Iterable[bytes] | None, None, None]:
        """Each blob's contents in turn, as verified bytes-like pieces; None for a blob not held.

        For a consumer that reads many blobs one after another, each to its end before it asks
        for the next (a NAR render): a backend may fetch ahead of it. Default: open_read each
        blob when its turn comes.
        """
        for digest in digests:
            yield from self._read_through(digest)

    def _read_through(self, digest: B3Digest) -> Generator[Iterable[bytes] | None, None, None]:
        """One blob as read_many yields it, through open_read."""
        reader = self.open_read(digest)
        if reader is None:
            yield None
            return
        with reader:
            yield iter(functools.partial(reader.read, READ_SIZE), b"")

    @abstractmethod
    def open_write(self) -> BlobWriter: ...

    def write_many(self) -> BlobBatchWriter | None:
        """A writer of many in-memory blobs in one stream, for a backend where a write per blob
        costs a round trip and a commit each (a remote daemon); None: write them one by one
        (castore.uploads decides)."""
        return None

    def batch(self) -> contextlib.AbstractContextManager[None]:
        """Group this thread's writes: they may become durable only when its outermost batch
        exits (writes of other threads are not held back).

        Bulk imports use it to commit once instead of once per blob. Default: no grouping.
        """
        return contextlib.nullcontext()

    def stored_bytes(self) -> int | None:
        """Bytes the backend occupies on its medium, when it can tell (for summaries)."""
        return None

    def usage(self) -> BlobUsage | None:
        """Counts and sizes of everything held, when the backend can tell (a remote one cannot)."""
        return None

    def verify_all(self, progress: Callable[[int, int], None] | None = None) -> Iterator[CorruptionError] | None:
        """Read back every stored chunk and check it against its digest, yielding one error per
        bad chunk; `progress(bytes checked, total)` as it goes. None when the backend cannot
        list what it holds (a remote one checks its own)."""
        return None

    def close(self) -> None:
        """Release connections and files."""
