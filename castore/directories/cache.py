"""The near/far directory cache: read near; on a miss fetch the whole closure from far into near.

A directory can only be stored with its closure (children before parents), so a miss
copies the closure below it, as Snix's cache does; far is the source of truth and takes
every write.
"""

from __future__ import annotations

import contextlib
from typing import Iterable, Iterator

from castore.digest import B3Digest
from castore.directories.closure import leaves_first
from castore.directories.service import DirectoryService
from castore.nodes import Directory


class CacheDirectoryService(DirectoryService):
    """Closing it leaves near and far open: the composition that built them closes them."""

    def __init__(self, near: DirectoryService, far: DirectoryService) -> None:
        self.near = near
        self.far = far

    def get(self, digest: B3Digest) -> Directory | None:
        found = self.near.get(digest)
        if found is None and self._fill(digest):
            found = self.near.get(digest)
        return found

    def get_many(self, digests: list[B3Digest]) -> list[Directory | None]:
        found = self.near.get_many(digests)
        return [d if d is not None else self.get(digest) for digest, d in zip(digests, found)]

    def get_recursive(self, digest: B3Digest) -> Iterator[Directory]:
        if self.near.get(digest) is None and not self._fill(digest):
            return iter(())
        return self.near.get_recursive(digest)

    def _fill(self, digest: B3Digest) -> bool:
        """Copy the closure below `digest` from far into near; False when far lacks it."""
        closure = list(self.far.get_recursive(digest))
        if not closure:
            return False
        self.near.put(leaves_first(closure))
        return True

    def put(self, directories: Iterable[Directory]) -> B3Digest:
        return self.far.put(directories)

    def batch(self) -> contextlib.AbstractContextManager[None]:
        stack = contextlib.ExitStack()
        stack.enter_context(self.near.batch())
        stack.enter_context(self.far.batch())
        return stack
