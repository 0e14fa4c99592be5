"""Directory listings for the mount: fetched from DirectoryService in worker threads, cached.

A Listing is prepared once per directory (entries in NAR order and by name), so neither
readdir nor lookup sorts or scans on the event loop.
"""

from __future__ import annotations

from dataclasses import dataclass

import trio

from castore.digest import B3Digest
from castore.directories.service import DirectoryService
from castore.errors import NotFoundError
from castore.nodes import Node
from fuse.cache import AsyncCache

CACHE_ENTRIES = 1 << 20
"""Entries of cached directories, summed: tens of megabytes at most."""


@dataclass(frozen=True)
class Listing:
    nodes: tuple[Node, ...]
    by_name: dict[bytes, Node]


class Listings:
    def __init__(self, directories: DirectoryService, limiter: trio.CapacityLimiter) -> None:
        self._directories = directories
        self._limiter = limiter
        self._cache: AsyncCache[B3Digest, Listing] = AsyncCache(CACHE_ENTRIES, lambda l: len(l.nodes) + 1)

    def cached(self, digest: B3Digest) -> Listing | None:
        """The listing if it is in memory, without a checkpoint or a coroutine: most requests' case."""
        return self._cache.get_cached(digest)

    async def get(self, digest: B3Digest) -> Listing:
        return await self._cache.get(digest, lambda: self.fetch(digest), self._limiter)

    def put(self, digest: B3Digest, listing: Listing) -> None:
        """Keep a listing fetched ahead of demand (see fuse.walk)."""
        self._cache.put(digest, listing)

    def fetch(self, digest: B3Digest) -> Listing:
        """In a worker thread: the directory from the backend."""
        directory = self._directories.get(digest)
        if directory is None:
            raise NotFoundError(f"directory {digest} not found")
        nodes = tuple(directory.nodes())
        return Listing(nodes, {n.name: n for n in nodes})
