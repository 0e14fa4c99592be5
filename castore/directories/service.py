"""The DirectoryService interface: directories addressed by the BLAKE3 of their encoding."""

from __future__ import annotations

import contextlib
from abc import ABC, abstractmethod
from collections import deque
from typing import Iterable, Iterator

from castore.digest import B3Digest
from castore.nodes import Directory


class DirectoryService(ABC):
    @abstractmethod
    def get(self, digest: B3Digest) -> Directory | None:
        """One directory, or None when unknown."""

    def get_recursive(self, digest: B3Digest) -> Iterator[Directory]:
        """The closure breadth-first from the root, each digest once; empty when unknown.

        A missing child below a known root raises NotFoundError.
        """
        from castore.errors import NotFoundError

        root = self.get(digest)
        if root is None:
            return
        seen = {bytes(digest)}
        queue = deque([root])
        while queue:
            directory = queue.popleft()
            yield directory
            for child in directory.directories:
                if child.digest in seen:
                    continue
                seen.add(child.digest)
                found = self.get(child.digest)
                if found is None:
                    raise NotFoundError(f"directory {child.digest} referenced but missing")
                queue.append(found)

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
