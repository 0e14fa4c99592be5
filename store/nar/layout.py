"""Where everything lies in a root's NAR, computed once: what rendering the whole NAR, a byte
range of it, its size and its `.ls` listing all read, instead of each walking the tree again.

A NAR is its files' contents with the grammar (framing) between them. The layout keeps every
node in NAR order with its depth below the root (for listings, and to make the framing again
when it is read: see Framing), each file's node (digest, size) and the offset of its contents,
in arrays where it can. No contents are read to make it: the directory closure is fetched with
one recursive get (one round trip to a remote service), and the framing follows from names,
sizes and targets. It is the nodes plus about 20 bytes per entry.

Every node was validated when it was built (names, their order, targets), so the layout
needs no grammar checks.
"""

from __future__ import annotations

from array import array
from dataclasses import dataclass
from typing import Iterator, Sequence, overload

from castore.digest import B3Digest
from castore.directories.service import DirectoryService
from castore.errors import NotFoundError
from castore.nodes import Directory, DirectoryNode, FileNode, Node
from store.nar.wire import CLOSE, DIRECTORY_OPEN, NAR_HEADER, entry_open, regular_header, regular_trailer, symlink_node


@dataclass(frozen=True, eq=False, slots=True)
class NarLayout:
    """A root's NAR without its file contents. Never changed once built."""

    size: int
    """NarSize: every byte of the NAR."""
    nodes: list[Node]
    """Every node in NAR order: the tree, for listings and for the framing."""
    depths: array
    """Each node's depth below the root (the root is 0)."""
    files: list[FileNode]
    """Every file, in NAR order (a file root is the one file)."""
    file_nodes: array
    """Where each file is in `nodes`."""
    offsets: array
    """Where each file's contents start in the NAR; strictly increasing (framing separates them)."""

    @property
    def framing(self) -> Framing:
        """The NAR bytes before each file's contents (after the previous file's), then those after the last."""
        return Framing(self)

    def framing_start(self, index: int) -> int:
        """Where `framing[index]` starts in the NAR."""
        end = self.offsets[index] if index < len(self.files) else self.size
        return end - len(self.framing[index])


class Framing(Sequence[bytes]):
    """A layout's framing, made again from its nodes when asked for: the grammar is most of a
    NAR of many small files (about 180 bytes per empty file), too much to keep for every one."""

    def __init__(self, layout: NarLayout) -> None:
        self._layout = layout

    def __len__(self) -> int:
        return len(self._layout.files) + 1

    @overload
    def __getitem__(self, index: int) -> bytes: ...

    @overload
    def __getitem__(self, index: slice) -> Sequence[bytes]: ...

    def __getitem__(self, index: int | slice) -> bytes | Sequence[bytes]:
        if isinstance(index, slice):
            return [self[i] for i in range(*index.indices(len(self)))]
        if index < 0:
            index += len(self)
        if not 0 <= index < len(self):
            raise IndexError(index)
        layout = self._layout
        after = layout.file_nodes[index - 1] if index else -1
        until = layout.file_nodes[index] if index < len(layout.files) else len(layout.nodes)
        return b"".join(_grammar(layout, after, until))

    def __iter__(self) -> Iterator[bytes]:
        layout = self._layout
        after = -1
        for until in (*layout.file_nodes, len(layout.nodes)):
            yield b"".join(_grammar(layout, after, until))
            after = until


def _grammar(layout: NarLayout, after: int, until: int) -> Iterator[bytes]:
    """The NAR bytes after node `after` (a file's contents; -1: the start) up to node `until`'s
    contents (`until` a file; len(nodes): the end of the NAR)."""
    nodes, depths = layout.nodes, layout.depths
    if after < 0:
        yield NAR_HEADER
    else:
        yield regular_trailer(nodes[after].size)
    for k in range(after + 1, min(until + 1, len(nodes))):
        if k:
            yield from _between(nodes[k - 1], depths[k - 1], depths[k])
            yield entry_open(nodes[k].name)
        node = nodes[k]
        if isinstance(node, FileNode):
            yield regular_header(node.size, node.executable)
        elif isinstance(node, DirectoryNode):
            yield DIRECTORY_OPEN
        else:
            yield symlink_node(node.target)
    if until == len(nodes) and nodes:
        yield from _between(nodes[-1], depths[-1], 0)
        if depths[-1]:
            yield CLOSE  # the root directory, closed last

def _between(previous: Node, depth: int, next_depth: int) -> Iterator[bytes]:
    """What closes between a node at `depth` and the next one at `next_depth` (or 0: the end):
    nothing for a directory's first entry; else the previous node if it is a directory (it was
    empty), the entry holding it, and each directory left (with the entry holding it)."""
    if isinstance(previous, DirectoryNode):
        if next_depth == depth + 1:
            return
        yield CLOSE
    if depth:
        yield CLOSE
        yield CLOSE * 2 * (depth - max(next_depth, 1))


def lay_out(directories: DirectoryService, root: Node) -> NarLayout:
    """The layout of `root`'s NAR; NotFoundError naming a directory missing from its closure.

    Walks the tree with an explicit stack, so depth costs no recursion. The NAR's size is
    summed from the grammar's lengths as it goes; the grammar itself is not kept (see Framing).
    """
    closure = _Closure(directories, root)
    nodes: list[Node] = []
    depths = array("I")
    files: list[FileNode] = []
    file_nodes = array("Q")
    offsets = array("Q")
    position = len(NAR_HEADER)  # the NAR bytes so far
    open_dirs: list[Iterator[Node]] = []  # per open directory, its entries not yet visited
    node = root
    while True:
        depth = len(open_dirs)
        if depth:
            position += len(entry_open(node.name))
        nodes.append(node)
        depths.append(depth)
        if isinstance(node, FileNode):
            position += len(regular_header(node.size, node.executable))
            files.append(node)
            file_nodes.append(len(nodes) - 1)
            offsets.append(position)
            position += node.size + len(regular_trailer(node.size))
        elif isinstance(node, DirectoryNode):
            position += len(DIRECTORY_OPEN)
            open_dirs.append(iter(closure.get(node.digest).nodes()))
        else:
            position += len(symlink_node(node.target))
        complete = not isinstance(node, DirectoryNode)
        while open_dirs:
            if complete:
                position += len(CLOSE)  # the entry that held the complete node
            node = next(open_dirs[-1], None)
            if node is not None:
                break
            open_dirs.pop()
            position += len(CLOSE)  # the directory
            complete = True
        else:
            return NarLayout(position, nodes, depths, files, file_nodes, offsets)


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
