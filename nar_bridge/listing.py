"""`<hash>.ls`: the JSON listing of a path's NAR, in the format of Nix's `write-nar-listing` files.

`{"version": 1, "root": node}` where a node is `{"type": "directory", "entries": {name: node}}`,
`{"type": "regular", "size": N, "executable": true?, "narOffset": M}` or
`{"type": "symlink", "target": T}`. `narOffset` is where the file's contents start in
the NAR, so a client can fetch one file with a Range request. Offsets come from the
lengths of the NAR grammar's pieces: no file contents are read.

Names and targets that are not UTF-8 are written as their raw bytes, as Nix does.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Iterator

from castore.errors import NotFoundError
from castore.nodes import Directory, DirectoryNode, FileNode, Node
from store.nar.wire import CLOSE, DIRECTORY_OPEN, NAR_HEADER, entry_open, regular_header, regular_trailer, symlink_node


def nar_listing(directories: dict[bytes, Directory], node: Node) -> bytes:
    """The listing document of a root node whose directory closure is given, as bytes."""
    document = {"version": 1, "root": nar_layout(directories, node).listing}
    return json.dumps(document, ensure_ascii=False, separators=(",", ":")).encode("utf-8", "surrogateescape")


@dataclass(frozen=True)
class NarLayout:
    listing: dict  # the `root` of the listing document
    nar_size: int
    contents: tuple[tuple[int, int], ...]  # (NAR offset, size) of every file's contents, in NAR order


def nar_layout(directories: dict[bytes, Directory], node: Node) -> NarLayout:
    """Where everything lies in the NAR of a root node whose directory closure is given."""
    walk = _Walk(directories)
    listing = walk.listing(node)
    return NarLayout(listing, walk.offset, tuple(walk.contents))


def _text(raw: bytes) -> str:
    return raw.decode("utf-8", "surrogateescape")


class _Walk:
    """Depth-first in NAR order with an explicit stack, tracking the NAR offset as it goes."""

    def __init__(self, directories: dict[bytes, Directory]) -> None:
        self._directories = directories
        self.offset = len(NAR_HEADER)  # where the next piece of the NAR starts
        self.contents: list[tuple[int, int]] = []
        self._open: list[tuple[dict, Iterator[Node]]] = []  # per open directory: its entries, children left

    def listing(self, root: Node) -> dict:
        document = self._enter(root)
        while self._open:
            entries, children = self._open[-1]
            child = next(children, None)
            if child is None:
                self._open.pop()
                self.offset += len(CLOSE) * (2 if self._open else 1)  # the directory, then its entry
                continue
            self.offset += len(entry_open(child.name))
            entries[_text(child.name)] = self._enter(child)
            if not isinstance(child, DirectoryNode):
                self.offset += len(CLOSE)
        return document

    def _enter(self, node: Node) -> dict:
        """The node's listing; a directory stays open until its children are walked."""
        if isinstance(node, FileNode):
            header = len(regular_header(node.size, node.executable))
            out: dict = {"type": "regular", "size": node.size}
            if node.executable:
                out["executable"] = True
            out["narOffset"] = self.offset + header
            self.contents.append((self.offset + header, node.size))
            self.offset += header + node.size + len(regular_trailer(node.size))
            return out
        if isinstance(node, DirectoryNode):
            directory = self._directories.get(bytes(node.digest))
            if directory is None:
                raise NotFoundError(f"directory {node.digest} not found")
            self.offset += len(DIRECTORY_OPEN)
            entries: dict = {}
            self._open.append((entries, iter(directory.nodes())))
            return {"type": "directory", "entries": entries}
        self.offset += len(symlink_node(node.target))
        return {"type": "symlink", "target": _text(node.target)}
