"""Tree walks: a directory opened brings its tree into memory ahead of the reader, each item once."""

from __future__ import annotations

import random
from typing import Awaitable, Callable, Union

import pytest
import trio

from castore.blobs.service import BlobService
from castore.digest import B3Digest
from castore.directories.memory import MemoryDirectoryService
from castore.nodes import Directory, DirectoryNode, FileNode
from fuse import walk
from fuse.background import Background
from fuse.contents import BlobContents
from fuse.listings import Listings
from fuse.walk import TreeWalker
from tests.castore.conftest import ChunkedMemoryBlobService
from tests.fuse.test_contents import Recording, put

Tree = dict[str, Union[bytes, "Tree"]]


class RecordingDirectories(MemoryDirectoryService):
    """Memory directories that record which digests were asked for."""

    def __init__(self) -> None:
        super().__init__()
        self.asked: list[B3Digest] = []

    def get(self, digest: B3Digest) -> Directory | None:
        self.asked.append(digest)
        return super().get(digest)


def store(tree: Tree, name: bytes, blobs: BlobService, directories: MemoryDirectoryService) -> DirectoryNode:
    """Put a tree of files (bytes) and directories (dicts); the node of its root."""
    closure: list[Directory] = []
    root = _collect(tree, name, blobs, closure)
    directories.put(closure)
    return root


def _collect(tree: Tree, name: bytes, blobs: BlobService, closure: list[Directory]) -> DirectoryNode:
    """Store the files, and add the directories to `closure` leaves first."""
    nodes = []
    for child, value in tree.items():
        if isinstance(value, dict):
            nodes.append(_collect(value, child.encode(), blobs, closure))
        else:
            nodes.append(FileNode(child.encode(), put(blobs, value).digest, len(value)))
    directory = Directory.of(nodes)
    closure.append(directory)
    return directory.as_node(name)


class Mount:
    """The mount's caches and a walker over recording backends."""

    def __init__(self, nursery: trio.Nursery) -> None:
        self.blobs = Recording(ChunkedMemoryBlobService())
        self.directories = RecordingDirectories()
        limiter = trio.CapacityLimiter(4)
        background = Background(nursery)
        self.listings = Listings(self.directories, limiter)
        self.contents = BlobContents(self.blobs, limiter, background)
        self.walker = TreeWalker(self.listings, self.contents, background)

    def store(self, tree: Tree, name: bytes = b"root") -> DirectoryNode:
        return store(tree, name, self.blobs.inner, self.directories)

    def backend_calls(self) -> int:
        return len(self.blobs.opened) + len(self.blobs.stats) + len(self.directories.asked)

    async def walked(self, root: DirectoryNode) -> None:
        """Open `root` and wait until the walk it starts is over (the backends fall quiet)."""
        self.walker.opened(root)
        calls = -1
        with trio.fail_after(5):
            while calls != self.backend_calls():
                calls = self.backend_calls()
                await trio.sleep(0.05)

    async def read_everything(self, root: DirectoryNode) -> None:
        for node in (await self.listings.get(root.digest)).nodes:
            if isinstance(node, DirectoryNode):
                await self.read_everything(node)
            elif isinstance(node, FileNode):
                await self.contents.read(node, 0, min(node.size, walk.HEAD_BYTES))


def run(body: Callable[[Mount], Awaitable[None]]) -> None:
    async def main() -> None:
        async with trio.open_nursery() as nursery:
            await body(Mount(nursery))
            nursery.cancel_scope.cancel()

    trio.run(main)


def test_an_opened_directory_brings_its_tree_into_memory_before_it_is_read(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(walk, "HEAD_BYTES", 250_000)  # the first two chunks of big.bin
    big = random.Random(7).randbytes(1_000_000)
    tree: Tree = {"a.txt": b"a\n", "lib": {"b.py": b"print(1)\n", "deep": {"c.py": b"print(2)\n"}}, "big.bin": big}

    async def body(mount: Mount) -> None:
        root = mount.store(tree)
        await mount.walked(root)
        chunks = mount.blobs.inner.stat(B3Digest.of(big)).chunks
        assert len(mount.directories.asked) == 3
        assert set(mount.blobs.opened) == {B3Digest.of(b"a\n"), B3Digest.of(b"print(1)\n"),
                                           B3Digest.of(b"print(2)\n"), chunks[0].digest, chunks[1].digest}
        calls = mount.backend_calls()
        await mount.read_everything(root)
        assert mount.backend_calls() == calls  # every listing and every piece read was in memory

    run(body)


def test_a_tree_sharing_a_subtree_with_one_walked_before_fetches_only_what_is_new() -> None:
    shared: Tree = {"x.py": b"x = 1\n", "y": {"z.py": b"z = 2\n"}}

    async def body(mount: Mount) -> None:
        await mount.walked(mount.store({"shared": shared, "one.txt": b"1\n", "same.txt": b"same\n"}))
        asked, opened = len(mount.directories.asked), len(mount.blobs.opened)
        second = mount.store({"shared": shared, "two.txt": b"2\n", "same.txt": b"same\n"}, b"second")
        await mount.walked(second)
        assert mount.directories.asked[asked:] == [second.digest]
        assert mount.blobs.opened[opened:] == [B3Digest.of(b"2\n")]

    run(body)


def test_a_walk_stops_at_its_budget_and_a_directory_it_did_not_reach_starts_the_next(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(walk, "WALK_BYTES", 10)
    tree: Tree = {"a.txt": b"0123456789", "b.txt": b"bbb", "sub": {"c.txt": b"ccc"}}

    async def body(mount: Mount) -> None:
        root = mount.store(tree)
        await mount.walked(root)
        assert mount.blobs.opened == [B3Digest.of(b"0123456789")]
        sub = (await mount.listings.get(root.digest)).by_name[b"sub"]
        assert isinstance(sub, DirectoryNode)
        await mount.walked(sub)
        assert mount.blobs.opened[1:] == [B3Digest.of(b"ccc")]

    run(body)


def test_a_file_that_cannot_be_fetched_is_left_to_its_reader() -> None:
    async def body(mount: Mount) -> None:
        kept = FileNode(b"kept.txt", put(mount.blobs.inner, b"kept\n").digest, 5)
        lost = FileNode(b"lost.txt", B3Digest.of(b"never stored"), 4)
        directory = Directory.of([kept, lost])
        mount.directories.put([directory])
        await mount.walked(directory.as_node(b"root"))
        assert mount.contents.cached_whole(kept) == b"kept\n"
        assert mount.contents.cached_whole(lost) is None

    run(body)
