"""castore -> NAR: the events and bytes of a root node, byte-identical to `nix-store --dump`.

The directory closure is fetched with one recursive get (one round trip to a remote
service); file contents are read from the blob service while the NAR is written, so
memory stays bounded by the writer's pieces, not by the tree.
"""

from __future__ import annotations

import hashlib
import io
from typing import Iterator

from castore.digest import B3Digest
from castore.errors import NotFoundError
from castore.nodes import Directory, DirectoryNode, FileNode, Node, SymlinkNode
from castore.url import CAStore
from store.nar import DIRECTORY_END, DIRECTORY_START, Entry, NarEvent, RegularFile, Symlink
from store.nar.writer import write_nar


def nar_events(store: CAStore, node: Node) -> Iterator[NarEvent]:
    """The NAR events of `node`; raises NotFoundError naming a missing blob or directory.

    Walks with an explicit stack, so depth costs neither recursion nor per-event
    generator chains.
    """
    directories = _Closure(store, node)
    open_dirs: list[Iterator[Node]] = []  # per open directory, its entries not yet visited
    current: Node | None = node
    while True:
        if isinstance(current, DirectoryNode):
            entries = directories.get(current.digest).nodes()
            yield DIRECTORY_START
            open_dirs.append(iter(entries))
        elif isinstance(current, FileNode):
            with _open_blob(store, current) as reader:  # open while the writer consumes it
                yield RegularFile(current.size, current.executable, reader)
        elif isinstance(current, SymlinkNode):
            yield Symlink(current.target)
        if not open_dirs:
            return
        current = next(open_dirs[-1], None)
        if current is None:
            open_dirs.pop()
            yield DIRECTORY_END
        else:
            yield Entry(current.name)


def render_nar(store: CAStore, node: Node) -> Iterator[bytes]:
    """The NAR of `node` in pieces of about 64 KiB or more (see write_nar)."""
    return write_nar(nar_events(store, node))


def calculate_nar(store: CAStore, node: Node) -> tuple[int, bytes]:
    """NarSize and NarHash (sha256) of `node`, by rendering it once."""
    sha256 = hashlib.sha256()
    size = 0
    for piece in render_nar(store, node):
        sha256.update(piece)
        size += len(piece)
    return size, sha256.digest()


def _open_blob(store: CAStore, node: FileNode) -> io.RawIOBase:
    reader = store.blobs.open_read(node.digest)
    if reader is None:
        raise NotFoundError(f"blob {node.digest} of {node.name!r} not found")
    return reader


class _Closure:
    """The directories below a root: one recursive get up front, single gets for any it missed."""

    def __init__(self, store: CAStore, node: Node) -> None:
        self._store = store
        self._found: dict[bytes, Directory] = {}
        if isinstance(node, DirectoryNode):
            self._found = {d.digest: d for d in store.directories.get_recursive(node.digest)}

    def get(self, digest: B3Digest) -> Directory:
        found = self._found.get(digest)
        if found is None:
            found = self._store.directories.get(digest)
            if found is None:
                raise NotFoundError(f"directory {digest} not found")
        return found
