"""Work ahead of a reader walking a tree (nix hash path, nix-store --dump, cp -r, tar).

Opening a directory starts a walk below it: one worker thread fetches its directories and
its files (small ones whole, the first HEAD_BYTES of larger ones) depth first, much as a
NAR dump visits them, and hands them to the caches in batches: one trip to the event loop
per DELIVER_SECONDS of work, not one worker-thread call per item. A reader following
behind finds directories listed and files in memory, and seldom waits for a thread.

A walk is bounded: it stops after WALK_BYTES of contents or WALK_DIRECTORIES directories.
A reader that gets past its end opens a directory the walk did not reach, which starts the
next one. One walk runs at a time; directories opened meanwhile wait in a queue.

The walker remembers the directories it walked and the files it fetched (up to REMEMBERED
of each, then it starts afresh), so trees that share subtrees and files, as two versions
of a package do, are fetched once.
"""

from __future__ import annotations

import logging
import time
from typing import Callable

import trio

from castore.digest import B3Digest
from castore.errors import CastoreError
from castore.nodes import DirectoryNode, FileNode
from fuse.background import Background
from fuse.contents import CACHE_BYTES, READAHEAD_BYTES, BlobContents, Head
from fuse.listings import Listing, Listings

log = logging.getLogger(__name__)

WALK_BYTES = CACHE_BYTES // 2
"""Contents one walk fetches at most: half the cache, so they stay until the reader gets there."""
WALK_DIRECTORIES = 1 << 14
HEAD_BYTES = READAHEAD_BYTES
"""How far into a large file a walk fetches: as far as reading ahead goes, which fetches the
rest once the file is being read (fuse.contents.OpenFile)."""
DELIVER_SECONDS = 0.002
"""How often a walk hands what it fetched to the caches: soon enough for a reader close
behind, seldom enough that the trips to the event loop cost little."""
REMEMBERED = 1 << 16
"""Digests of walked directories and of fetched files kept, each (a few megabytes)."""

Deliver = Callable[[list[tuple[B3Digest, Listing]], list[Head]], None]


class TreeWalker:
    def __init__(self, listings: Listings, contents: BlobContents, background: Background) -> None:
        self._listings = listings
        self._contents = contents
        self._background = background
        self._queue: dict[B3Digest, None] = {}
        self._walking = False
        # Both are written by the walking thread only; `_walked` is also read on the event
        # loop, which is safe since set operations are atomic (a stale answer costs a
        # queued walk that finds nothing to do).
        self._walked: set[B3Digest] = set()
        self._fetched: set[B3Digest] = set()

    def opened(self, directory: DirectoryNode) -> None:
        """A reader opened `directory`: walk below it, unless a walk got there first."""
        if directory.digest in self._walked or directory.digest in self._queue:
            return
        self._queue[directory.digest] = None
        if not self._walking:
            self._walking = self._background.start(self._walk_queue)

    async def _walk_queue(self) -> None:
        try:
            while self._queue:
                roots, self._queue = list(self._queue), {}
                await trio.to_thread.run_sync(self._walk, roots, trio.lowlevel.current_trio_token(),
                                              limiter=self._background.limiter)
        finally:
            self._walking = False

    def _keep(self, listings: list[tuple[B3Digest, Listing]], heads: list[Head]) -> None:
        """On the event loop: hand a batch to the caches."""
        for digest, listing in listings:
            self._listings.put(digest, listing)
        for head in heads:
            self._contents.keep(head)

    # -- the walking thread ----------------------------------------------------------

    def _walk(self, roots: list[B3Digest], token: trio.lowlevel.TrioToken) -> None:
        batch = _Batch(self._keep, token)
        for root in roots:
            self._walk_below(root, batch)
        batch.send()

    def _walk_below(self, root: B3Digest, batch: _Batch) -> None:
        """Depth first, a directory's files before its subdirectories, until the budget is spent."""
        stack, directories, size = [root], 0, 0
        while stack and directories < WALK_DIRECTORIES and size < WALK_BYTES:
            trio.from_thread.check_cancelled()
            digest = stack.pop()
            if digest in self._walked:
                continue
            _remember(self._walked, digest)
            try:
                listing = self._listings.fetch(digest)
            except CastoreError as e:
                log.debug("walk: %s", e)
                continue
            directories += 1
            batch.listings.append((digest, listing))
            for node in listing.nodes:
                if size >= WALK_BYTES:
                    break
                if isinstance(node, FileNode) and node.size and node.digest not in self._fetched:
                    size += self._fetch(node, batch)
            stack.extend(n.digest for n in reversed(listing.nodes) if isinstance(n, DirectoryNode))
            batch.send_if_due()

    def _fetch(self, node: FileNode, batch: _Batch) -> int:
        """Fetch the head of one file into the batch; the bytes fetched (none if it failed: a read reports that)."""
        try:
            head = self._contents.fetch_head(node, HEAD_BYTES)
        except CastoreError as e:
            log.debug("walk: %s", e)
            return 0
        _remember(self._fetched, node.digest)
        batch.heads.append(head)
        return head.size


class _Batch:
    """What a walk fetched since it last handed over; sent to the event loop without waiting for it.

    The loop takes a delivery at its next turn of trio, up to fuse.loop.YIELD_SECONDS later: a
    walk that waited for each one took a third longer, and all the while it and the request
    loop take the GIL from each other. Done sooner, it holds up fewer requests."""

    def __init__(self, deliver: Deliver, token: trio.lowlevel.TrioToken) -> None:
        self._deliver = deliver
        self._token = token
        self._sent = 0.0
        self.listings: list[tuple[B3Digest, Listing]] = []
        self.heads: list[Head] = []

    def send_if_due(self) -> None:
        if time.monotonic() - self._sent >= DELIVER_SECONDS:
            self.send()

    def send(self) -> None:
        if self.listings or self.heads:
            listings, heads, self.listings, self.heads = self.listings, self.heads, [], []
            self._token.run_sync_soon(self._deliver, listings, heads)
        self._sent = time.monotonic()


def _remember(seen: set[B3Digest], digest: B3Digest) -> None:
    if len(seen) >= REMEMBERED:
        seen.clear()
    seen.add(digest)
