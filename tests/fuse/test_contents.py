"""Lazy file contents: a read fetches only the pieces covering it, once, in worker threads."""

from __future__ import annotations

import io
import random
import re
from typing import Awaitable, Callable

import pytest
import trio

from castore.blobs.memory import MemoryBlobService
from castore.blobs.service import BlobService, BlobStat, BlobWriter
from castore.digest import B3Digest
from castore.errors import NotFoundError
from castore.nodes import FileNode
from fuse.background import Background
from fuse.contents import WINDOW, BlobContents, OpenFile
from tests.castore.conftest import ChunkedMemoryBlobService


class Recording(BlobService):
    """Delegates to `inner` and records which digests were opened or stat'ed."""

    def __init__(self, inner: BlobService) -> None:
        self.inner = inner
        self.opened: list[B3Digest] = []
        self.stats: list[B3Digest] = []

    def has(self, digest: B3Digest) -> bool:
        return self.inner.has(digest)

    def stat(self, digest: B3Digest) -> BlobStat | None:
        self.stats.append(digest)
        return self.inner.stat(digest)

    def open_read(self, digest: B3Digest) -> io.RawIOBase | None:
        self.opened.append(digest)
        return self.inner.open_read(digest)

    def open_write(self) -> BlobWriter:
        return self.inner.open_write()


def put(blobs: BlobService, data: bytes) -> FileNode:
    with blobs.open_write() as writer:
        writer.write(data)
        return FileNode(b"f", writer.close(), len(data))


def run(blobs: BlobService, body: Callable[[BlobContents], Awaitable[None]]) -> None:
    async def main() -> None:
        async with trio.open_nursery() as nursery:
            await body(BlobContents(blobs, trio.CapacityLimiter(4), Background(nursery)))
            nursery.cancel_scope.cancel()

    trio.run(main)


def test_a_read_fetches_only_the_chunks_covering_it_and_only_once() -> None:
    inner = ChunkedMemoryBlobService()
    data = random.Random(1).randbytes(1_000_000)
    node = put(inner, data)
    chunks = inner.stat(node.digest).chunks  # 200_000, 300_001, 77_777, ...
    blobs = Recording(inner)

    async def body(contents: BlobContents) -> None:
        assert await contents.read(node, 250_000, 1000) == data[250_000:251_000]
        assert blobs.opened == [chunks[1].digest]
        assert await contents.read(node, 199_000, 2000) == data[199_000:201_000]
        assert blobs.opened == [chunks[1].digest, chunks[0].digest]
        assert await contents.read(node, 199_500, 1000) == data[199_500:200_500]
        assert await contents.read(node, 999_000, 5000) == data[999_000:]
        assert await contents.read(node, 1_000_000, 10) == b""
        assert len(blobs.opened) == 3 and blobs.stats == [node.digest]

    run(blobs, body)


def test_a_large_blob_stored_whole_is_read_in_windows() -> None:
    inner = MemoryBlobService()
    data = random.Random(2).randbytes(3 * WINDOW + 12345)
    node = put(inner, data)
    blobs = Recording(inner)

    async def body(contents: BlobContents) -> None:
        offset = 2 * WINDOW + 100
        assert await contents.read(node, offset, 200_000) == data[offset:offset + 200_000]
        assert await contents.read(node, WINDOW - 10, 20) == data[WINDOW - 10:WINDOW + 10]
        assert blobs.opened == [node.digest] * 3  # windows 2, 0 and 1

    run(blobs, body)


def test_a_small_file_is_one_call_without_a_stat() -> None:
    blobs = Recording(MemoryBlobService())
    node = put(blobs.inner, b"hello world")

    async def body(contents: BlobContents) -> None:
        assert await contents.read(node, 0, 4096) == b"hello world"
        assert await contents.read(node, 6, 4096) == b"world"
        assert blobs.opened == [node.digest] and blobs.stats == []

    run(blobs, body)


def test_a_missing_blob_fails_each_read_and_is_asked_for_again() -> None:
    blobs = Recording(MemoryBlobService())
    node = FileNode(b"gone", B3Digest.of(b"never stored"), 5)

    async def body(contents: BlobContents) -> None:
        for _ in range(2):
            with pytest.raises(NotFoundError, match=re.escape(str(node.digest))):
                await contents.read(node, 0, 5)
        assert blobs.opened == [node.digest, node.digest]

    run(blobs, body)


def test_sequential_reading_fetches_the_next_chunks_ahead() -> None:
    inner = ChunkedMemoryBlobService()
    data = random.Random(3).randbytes(2_000_000)
    node = put(inner, data)
    chunks = inner.stat(node.digest).chunks
    blobs = Recording(inner)

    async def body(contents: BlobContents) -> None:
        handle = OpenFile(contents, node)
        assert await handle.read(0, 131072) == data[:131072]
        with trio.fail_after(5):
            while chunks[-1].digest not in blobs.opened:
                await trio.sleep(0.01)
        opened = len(blobs.opened)
        assert await handle.read(131072, 1_000_000) == data[131072:1_131072]
        assert len(blobs.opened) == opened  # all there already

    run(blobs, body)
