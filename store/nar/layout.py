"""Where everything lies in a root's NAR, computed once: what rendering the whole NAR, a byte
range of it, its size and its `.ls` listing all read, instead of each walking the tree again.

A NAR is its files' contents with the grammar (framing) between them. The layout keeps every
node in NAR order with its depth below the root (for listings, and to make the framing again
when it is read: see Framing), each file's node (digest, size) and the offset of its contents,
in arrays where it can. No contents are read to make it: the directory closure is fetched with
one recursive get (one round trip to a remote service), and the framing follows from names,
sizes and targets. It is the nodes plus about 20 bytes per entry.

Every node was validated when it entered castore (names, their order, targets), so the layout
needs no grammar checks, and the NAR's lengths are summed from names, sizes and targets
without making its grammar.
"""

from __future__ import annotations

from array import array
from typing import Iterator, Sequence, overload

from castore.digest import B3Digest
from castore.directories.service import DirectoryService
from castore.errors import NotFoundError
from castore.nodes import Directory, DirectoryNode, FileNode, Node
from store.nar.wire import CLOSE, DIRECTORY_OPEN, NAR_HEADER, entry_open, regular_header, regular_trailer, symlink_node


class NarLayout:
    """A root's NAR without its file contents. Never changed once built. (A plain class: a
    dataclass would load `dataclasses`, about 6 ms of every `cairn dump`.)"""

    __slots__ = ("size", "nodes", "depths", "files", "file_nodes", "offsets")

    def __init__(self, size: int, nodes: list[Node], depths: array, files: list[FileNode], file_nodes: array,
                 offsets: array) -> None:
        self.size = size
        """NarSize: every byte of the NAR."""
        self.nodes = nodes
        """Every node in NAR order: the tree, for listings and for the framing."""
        self.depths = depths
        """Each node's depth below the root (the root is 0)."""
        self.files = files
        """Every file, in NAR order (a file root is the one file)."""
        self.file_nodes = file_nodes
        """Where each file is in `nodes`."""
        self.offsets = offsets
        """Where each file's contents start in the NAR; strictly increasing (framing separates them)."""

    @property
    def framing(self) -> Framing:
        """The NAR bytes before each file's contents (after the previous file's), then those after the last."""
        return Framing(self)

    @property
    def digests(self) -> list[B3Digest]:
        """Each file's blob digest, in NAR order."""
        return [file.digest for file in self.files]

    @property
    def sizes(self) -> list[int]:
        """Each file's size, in NAR order."""
        return [file.size for file in self.files]

    def file_name(self, index: int) -> bytes:
        return self.files[index].name

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
        return next(_framings(layout.nodes, layout.depths, layout.file_nodes[index - 1] if index else -1))

    def __iter__(self) -> Iterator[bytes]:
        return _framings(self._layout.nodes, self._layout.depths, -1)


def _framings(nodes: list[Node], depths: array, after: int) -> Iterator[bytes]:
    """The framing after node `after` (a file, whose contents it follows; -1: the NAR's start)
    up to the next file's contents or the end, then each one after it.

    Between a node and the next, deeper one nothing closes (it is the first entry of the
    directory just opened); before one as deep or shallower close the previous node if it is a
    directory (it was empty), the entry holding it, and two for each directory left (its node,
    its entry)."""
    out = [NAR_HEADER if after < 0 else regular_trailer(nodes[after].size)]
    depth = depths[after] if after >= 0 else 0  # of the node before
    opened = False  # whether the node before is a directory
    for k in range(after + 1, len(nodes)):
        node = nodes[k]
        if k:
            next_depth = depths[k]
            if next_depth <= depth:
                out.append(CLOSE * (opened + 1 + 2 * (depth - next_depth)))
            depth = next_depth
            out.append(entry_open(node.name))
        kind = type(node)
        opened = kind is DirectoryNode
        if kind is FileNode:
            out.append(regular_header(node.size, node.executable))
            yield b"".join(out)
            out = [regular_trailer(node.size)]
        elif opened:
            out.append(DIRECTORY_OPEN)
        else:
            out.append(symlink_node(node.target))
    if nodes:  # the last node (if an empty directory), then each directory left and its entry
        out.append(CLOSE * (opened + 2 * depth))
    yield b"".join(out)


def lay_out(directories: DirectoryService, root: Node) -> NarLayout:
    """The layout of `root`'s NAR; NotFoundError naming a directory missing from its closure.

    Walks the tree with an explicit stack, so depth costs no recursion. The NAR's size is
    summed from the grammar's lengths as it goes, computed from names, sizes and targets: the
    grammar itself is not made (see Framing). The root is counted as an entry, which it is not:
    the start and the end take out the entry that would open before it and close after it.
    """
    get = _Closure(directories, root).get
    nodes: list[Node] = []
    depths: list[int] = []
    files: list[FileNode] = []
    file_nodes: list[int] = []
    offsets: list[int] = []
    position = len(NAR_HEADER) - _ENTRY_OPEN - (len(root.name) + 7 & -8)  # the NAR bytes so far
    entries: Sequence[Node] = (root,)  # those of the directory being walked, in NAR order
    index = depth = 0  # the next of them, and their depth
    above: list[Sequence[Node]] = []  # the entries of each directory above
    resume: list[int] = []  # and where to go on in them
    while True:
        if index == len(entries):
            if not above:
                return NarLayout(position - _CLOSE, nodes, array("I", depths), files, array("Q", file_nodes),
                                 array("Q", offsets))
            entries, index = above.pop(), resume.pop()
            depth -= 1
            position += _CLOSE * 2  # the directory finished, and its entry
            continue
        node = entries[index]
        index += 1
        nodes.append(node)
        depths.append(depth)
        position += _ENTRY_OPEN + (len(node.name) + 7 & -8)
        kind = type(node)
        if kind is FileNode:
            position += _REGULAR_HEADER[node.executable]
            files.append(node)
            file_nodes.append(len(nodes) - 1)
            offsets.append(position)
            position += (node.size + 7 & -8) + _CLOSE * 2  # the contents padded, the node, its entry
        elif kind is DirectoryNode:
            position += _DIRECTORY_OPEN
            above.append(entries)
            resume.append(index)
            entries, index = get(node.digest).nodes(), 0
            depth += 1
        else:
            position += _SYMLINK + (len(node.target) + 7 & -8) + _CLOSE * 2


_CLOSE = len(CLOSE)
_DIRECTORY_OPEN = len(DIRECTORY_OPEN)
_REGULAR_HEADER = (len(regular_header(0, False)), len(regular_header(0, True)))
"""Up to a file's contents: they follow, padded to 8, then CLOSE."""
_SYMLINK = len(symlink_node(b"")) - len(CLOSE)
"""A symlink node up to its target's bytes (they follow, padded to 8, then CLOSE)."""
_ENTRY_OPEN = len(entry_open(b""))
"""An entry up to its node but its name, padded to 8 bytes."""


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
