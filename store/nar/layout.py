"""Where everything lies in a root's NAR, computed once: what rendering the whole NAR, a byte
range of it, its size and its `.ls` listing all read, instead of each walking the tree again.

A NAR is its files' contents with the grammar (framing) between them. The layout keeps that
framing as bytes, each file's node (digest, size) and the offset of its contents, and every
node in NAR order with its depth below the root (for listings). No contents are read to make
it: the directory closure is fetched with one recursive get (one round trip to a remote
service), and the framing follows from names, sizes and targets. It is a few bytes per entry.

Every node was validated when it was built (names, their order, targets), so the layout
needs no grammar checks.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterator

from castore.digest import B3Digest
from castore.directories.service import DirectoryService
from castore.errors import NotFoundError
from castore.nodes import Directory, DirectoryNode, FileNode, Node
from store.nar.wire import CLOSE, DIRECTORY_OPEN, NAR_HEADER, entry_open, regular_header, regular_trailer, symlink_node


@dataclass(frozen=True, eq=False, slots=True)
class NarLayout:
    """A root's NAR without its file contents. The lists are never changed once built."""

    size: int
    """NarSize: every byte of the NAR."""
    files: list[FileNode]
    """Every file, in NAR order (a file root is the one file)."""
    offsets: list[int]
    """Where each file's contents start in the NAR; strictly increasing (framing separates them)."""
    framing: list[bytes]
    """The NAR bytes before each file's contents (after the previous file's), then those after the last."""
    nodes: list[tuple[int, Node]]
    """Every node in NAR order with its depth below the root (the root is 0): the tree, for listings."""

    def framing_start(self, index: int) -> int:
        """Where `framing[index]` starts in the NAR."""
        end = self.offsets[index] if index < len(self.files) else self.size
        return end - len(self.framing[index])


def lay_out(directories: DirectoryService, root: Node) -> NarLayout:
    """The layout of `root`'s NAR; NotFoundError naming a directory missing from its closure.

    Walks the tree with an explicit stack, so depth costs no recursion.
    """
    closure = _Closure(directories, root)
    files: list[FileNode] = []
    offsets: list[int] = []
    framing: list[bytes] = []
    nodes: list[tuple[int, Node]] = []
    grammar = [NAR_HEADER]  # the framing since the last file's contents
    position = 0  # where the last file's contents end
    open_dirs: list[Iterator[Node]] = []  # per open directory, its entries not yet visited
    node = root
    while True:
        nodes.append((len(open_dirs), node))
        if isinstance(node, FileNode):
            grammar.append(regular_header(node.size, node.executable))
            piece = b"".join(grammar)
            position += len(piece)
            framing.append(piece)
            files.append(node)
            offsets.append(position)
            position += node.size
            grammar = [regular_trailer(node.size)]
        elif isinstance(node, DirectoryNode):
            grammar.append(DIRECTORY_OPEN)
            open_dirs.append(iter(closure.get(node.digest).nodes()))
        else:
            grammar.append(symlink_node(node.target))
        complete = not isinstance(node, DirectoryNode)
        while open_dirs:
            if complete:
                grammar.append(CLOSE)  # the entry that held the complete node
            node = next(open_dirs[-1], None)
            if node is not None:
                grammar.append(entry_open(node.name))
                break
            open_dirs.pop()
            grammar.append(CLOSE)  # the directory
            complete = True
        else:
            tail = b"".join(grammar)
            framing.append(tail)
            return NarLayout(position + len(tail), files, offsets, framing, nodes)


class _Closure:
    """The directories below a root: one recursive get up front, single gets for any it missed."""

    def __init__(self, directories: DirectoryService, node: Node) -> None:
        self._directories = directories
        self._found: dict[bytes, Directory] = {}
        if isinstance(node, DirectoryNode):
            self._found = {d.digest: d for d in directories.get_recursive(node.digest)}

    def get(self, digest: B3Digest) -> Directory:
        found = self._found.get(digest)
        if found is None:
            found = self._directories.get(digest)
            if found is None:
                raise NotFoundError(f"directory {digest} not found")
        return found
