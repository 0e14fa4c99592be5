"""The DirectoryService interface: directories addressed by the BLAKE3 of their encoding."""

from __future__ import annotations

import contextlib
from abc import ABC, abstractmethod
from typing import Iterable, Iterator

from castore.digest import B3Digest
from castore.nodes import Directory


class DirectoryService(ABC):
    @abstractmethod
    def get(self, digest: B3Digest) -> Directory | None:
        """One directory, or None when unknown."""

    def get_many(self, digests: list[B3Digest]) -> list[Directory | None]:
        """Several directories at once (a backend may fetch them together); None for unknown ones."""
        return [self.get(d) for d in digests]

    def get_recursive(self, digest: B3Digest) -> Iterator[Directory]:
        """The closure breadth-first from the root, each digest once; empty when unknown.

        A missing child below a known root raises NotFoundError. Each level is fetched with one get_many.
        """
        from castore.errors import NotFoundError

        root = self.get(digest)
        if root is None:
            return
        seen = {bytes(digest)}
        level = [root]
        while level:
            yield from level
            wanted = []
            for directory in level:
                for child in directory.directories:
                    if child.digest not in seen:
                        seen.add(child.digest)
                        wanted.append(child.digest)
            level = self.get_many(wanted)
            for child, found in zip(wanted, level):
                if found is None:
                    raise NotFoundError(f"directory {child} referenced but missing")

    def get_recursive_encoded(self, digest: B3Digest) -> Iterator[bytes]:
        """get_recursive's directories as their canonical encodings, for a server to send on.
        Default: encode what get_recursive gives; a backend that stores encodings may skip
        decoding them."""
        return (directory.encoded for directory in self.get_recursive(digest))

    @abstractmethod
    def put(self, directories: Iterable[Directory]) -> B3Digest:
        """Store a leaves-first closure (validated as a whole); returns the root's digest.

        Nothing is stored when validation fails.
        """

    def batch(self) -> contextlib.AbstractContextManager[None]:
        """Group puts with blob writes of the same backend (see BlobService.batch)."""
        return contextlib.nullcontext()

    def close(self) -> None:
        """Release connections and files."""
