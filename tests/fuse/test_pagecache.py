"""Contents handed to the kernel at open: at an inode's first open only, if in memory; failures harmless."""

from __future__ import annotations

import errno

import pytest
import trio

from castore.blobs.memory import MemoryBlobService
from castore.nodes import FileNode
from fuse import pagecache
from fuse.background import Background
from fuse.contents import BlobContents, Head
from fuse.pagecache import PageCache
from tests.fuse.test_contents import put


class KernelStub:
    """Records notify_store calls; fails with `error` while it is set."""

    def __init__(self) -> None:
        self.stored: list[tuple[int, int, bytes]] = []
        self.error: int | None = None

    def notify_store(self, inode: int, offset: int, data: bytes) -> None:
        if self.error is not None:
            raise OSError(self.error, "notify_store failed")
        self.stored.append((inode, offset, data))


def in_memory(contents: BlobContents, node: FileNode, data: bytes) -> None:
    contents.keep(Head(node.digest, None, [((node.digest, 0), data)]))


def test_contents_in_memory_are_stored_at_the_first_open_of_an_inode_only(monkeypatch: pytest.MonkeyPatch) -> None:
    kernel = KernelStub()
    monkeypatch.setattr(pagecache.pyfuse3, "notify_store", kernel.notify_store)
    blobs = MemoryBlobService()
    early, late, failing = put(blobs, b"early\n"), put(blobs, b"late\n"), put(blobs, b"failing\n")

    async def main() -> None:
        async with trio.open_nursery() as nursery:
            contents = BlobContents(blobs, trio.CapacityLimiter(1), Background(nursery))
            cache = PageCache(contents)
            in_memory(contents, early, b"early\n")
            cache.offer(7, early)
            cache.offer(7, early)
            cache.offer(8, late)  # not in memory at its first open: a read fills the kernel's cache
            in_memory(contents, late, b"late\n")
            cache.offer(8, late)  # a read of inode 8 may be under way: never stored now
            in_memory(contents, failing, b"failing\n")
            kernel.error = errno.ENOENT
            cache.offer(9, failing)
            nursery.cancel_scope.cancel()

    trio.run(main)
    assert kernel.stored == [(7, 0, b"early\n")]
