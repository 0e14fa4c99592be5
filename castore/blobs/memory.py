"""In-process blob backend: whole blobs in a dict, for unit tests and `memory://`."""

from __future__ import annotations

import io
import threading
from typing import Callable, Iterator

import blake3

from castore.blobs.service import BlobService, BlobStat, BlobUsage, BlobWriter
from castore.digest import B3Digest
from castore.errors import CorruptionError


class MemoryBlobService(BlobService):
    def __init__(self) -> None:
        self._blobs: dict[bytes, bytes] = {}
        self._lock = threading.Lock()

    def has(self, digest: B3Digest) -> bool:
        return bytes(digest) in self._blobs

    def stat(self, digest: B3Digest) -> BlobStat | None:
        data = self._blobs.get(bytes(digest))
        return None if data is None else BlobStat(len(data))

    def open_read(self, digest: B3Digest) -> io.BytesIO | None:
        data = self._blobs.get(bytes(digest))
        return None if data is None else io.BytesIO(data)

    def open_write(self) -> BlobWriter:
        return _MemoryWriter(self)

    def usage(self) -> BlobUsage:
        """Every blob is one stand-alone piece held as is: logical and stored bytes are the same."""
        with self._lock:
            size = sum(len(b) for b in self._blobs.values())
            return BlobUsage(0, len(self._blobs), len(self._blobs), 0, size, size, 0)

    def verify_all(self, progress: Callable[[int, int], None] | None = None) -> Iterator[CorruptionError]:
        with self._lock:
            blobs = list(self._blobs.items())
        return self._verify(blobs, progress)

    @staticmethod
    def _verify(blobs: list[tuple[bytes, bytes]],
                progress: Callable[[int, int], None] | None) -> Iterator[CorruptionError]:
        total = sum(len(data) for _, data in blobs)
        done = 0
        for digest, data in blobs:
            if blake3.blake3(data).digest() != digest:
                yield CorruptionError(f"blob {B3Digest(digest)} does not match its digest")
            done += len(data)
            if progress:
                progress(done, total)

    def _put(self, digest: bytes, data: bytes) -> None:
        with self._lock:
            self._blobs.setdefault(digest, data)


class _MemoryWriter(BlobWriter):
    def __init__(self, service: MemoryBlobService) -> None:
        self._service = service
        self._buf = bytearray()

    def write(self, data: bytes | memoryview) -> int:
        self._buf += data
        return len(data)

    def close(self) -> B3Digest:
        digest = B3Digest(blake3.blake3(self._buf).digest())
        self._service._put(bytes(digest), bytes(self._buf))
        return digest
