"""Directory closures of the roots being served: fetched once, checked, and kept for a while.

Fetching and decoding a tree's directories is about a third of the cost of rendering a
tree of small files, and checking that every blob exists another tenth; both happen
before the first byte of a response, while the client waits. Directories are
content-addressed, so a cached closure is never stale; the blobs are checked again
when the last check is older than BLOB_CHECK_SECONDS (Cairn never deletes blobs, so
this only narrows the window in which a damaged store is noticed mid-stream).
"""

from __future__ import annotations

import collections
import threading
import time
from dataclasses import dataclass
from typing import Iterable, Iterator

from castore.digest import B3Digest
from castore.directories.service import DirectoryService
from castore.errors import NotFoundError, ValidationError
from castore.nodes import Directory, DirectoryNode, FileNode, Node, encode_node, rename
from castore.url import CAStore
from nar_bridge.listing import nar_layout

CLOSURE_CACHE_ENTRIES = 100_000
"""Directory entries of cached closures in all, at about 0.9 KB of Python objects each: some
90 MB at most (the seven package trees of the benchmark corpus take a quarter of it)."""
BLOB_CHECK_SECONDS = 60.0


@dataclass
class Closure:
    directories: dict[bytes, Directory]  # by digest
    nar_size: int
    contents: tuple[tuple[int, int], ...]  # (NAR offset, size) of every file's contents, in NAR order
    blobs_checked: float = float("-inf")  # time.monotonic() of the last check that every blob exists

    def check_blobs(self, castore: CAStore, node: Node) -> None:
        """NotFoundError naming a missing blob, unless every blob was there moments ago."""
        now = time.monotonic()
        if now - self.blobs_checked < BLOB_CHECK_SECONDS:
            return
        files = [n for d in self.directories.values() for n in d.files]
        if isinstance(node, FileNode):
            files.append(node)
        for f in files:
            if not castore.blobs.has(f.digest):
                raise NotFoundError(f"blob {f.digest} of {f.name!r} not found")
        self.blobs_checked = now


class ClosureCache:
    """The closures of recently served roots, up to `entries` directory entries in all; thread-safe."""

    def __init__(self, entries: int = CLOSURE_CACHE_ENTRIES) -> None:
        self._limit = entries
        self._closures: collections.OrderedDict[bytes, tuple[Closure, int]] = collections.OrderedDict()
        self._entries = 0
        self._lock = threading.Lock()

    def get(self, directories: DirectoryService, node: Node) -> Closure:
        """Blocking: the closure below `node` (empty for a file or symlink); NotFoundError when incomplete."""
        key = encode_node(rename(node, b""))
        with self._lock:
            cached = self._closures.get(key)
            if cached is not None:
                self._closures.move_to_end(key)
                return cached[0]
        found: dict[bytes, Directory] = {}
        if isinstance(node, DirectoryNode):
            found = {bytes(d.digest): d for d in directories.get_recursive(node.digest)}
            if not found:
                raise NotFoundError(f"directory {node.digest} not found")
        layout = nar_layout(found, node)
        closure = Closure(found, layout.nar_size, layout.contents)
        size = sum(len(d.directories) + len(d.files) + len(d.symlinks) for d in found.values()) + 1
        with self._lock:
            if key not in self._closures:
                self._closures[key] = (closure, size)
                self._entries += size
            while self._entries > self._limit:
                _, (_, evicted) = self._closures.popitem(last=False)
                self._entries -= evicted
        return closure


class ClosureView(DirectoryService):
    """A root's checked directory closure: every directory and every blob exists, and the NAR
    has `nar_size` bytes (a castore URL's narsize comes from the client).

    The renderer then reads directories from here instead of asking the store again.
    """

    def __init__(self, castore: CAStore, closures: ClosureCache, node: Node, nar_size: int) -> None:
        closure = closures.get(castore.directories, node)
        closure.check_blobs(castore, node)
        self._found = closure.directories
        self.contents = closure.contents
        if closure.nar_size != nar_size:
            raise ValidationError(f"the NAR of this node has {closure.nar_size} bytes, not {nar_size}")

    def get(self, digest: B3Digest) -> Directory | None:
        return self._found.get(bytes(digest))

    def get_recursive(self, digest: B3Digest) -> Iterator[Directory]:
        return iter(self._found.values()) if bytes(digest) in self._found else iter(())

    def put(self, directories: Iterable[Directory]) -> B3Digest:
        raise TypeError("a closure view is read-only")
