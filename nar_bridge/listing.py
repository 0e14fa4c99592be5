"""`<hash>.ls`: the JSON listing of a path's NAR, in the format of Nix's `write-nar-listing` files.

`{"version": 1, "root": node}` where a node is `{"type": "directory", "entries": {name: node}}`,
`{"type": "regular", "size": N, "executable": true?, "narOffset": M}` or
`{"type": "symlink", "target": T}`. `narOffset` is where the file's contents start in
the NAR, so a client can fetch one file with a Range request. Everything comes from the
NAR's layout: no file contents are read.

The document is written as it is walked, in pieces: no tree of objects is built, so memory
does not grow with the number of entries and nesting costs no recursion (a JSON encoder
given the nested document fails past about a thousand levels).

Names and targets that are not UTF-8 are written as their raw bytes, as Nix does.
"""

from __future__ import annotations

import json
from typing import Iterator

from castore.nodes import DirectoryNode, FileNode
from store.nar.layout import NarLayout

PIECE_SIZE = 1 << 16
"""The listing is handed on in pieces of about this size."""
_STRING = json.JSONEncoder(ensure_ascii=False).encode


def nar_listing(layout: NarLayout) -> bytes:
    """The listing document of a root's NAR, as bytes."""
    return b"".join(listing_pieces(layout))


def listing_pieces(layout: NarLayout) -> Iterator[bytes]:
    """The listing document in pieces of about PIECE_SIZE: the layout's nodes (in NAR order, with
    their depths) written with an explicit count of the directories still open."""
    offsets = iter(layout.offsets)
    pending: list[bytes] = [b'{"version":1,"root":']
    size = 0
    open_dirs = 0
    first = True  # the next entry is the first of its directory
    for depth, node in zip(layout.depths, layout.nodes):
        if open_dirs > depth:
            pending.append(b"}}" * (open_dirs - depth))  # the entries, then the node, of each
            open_dirs = depth
            first = False  # a directory just closed was an entry of this one
        if depth:
            pending.append((b"" if first else b",") + _string(node.name) + b":")
        first = False
        if isinstance(node, FileNode):
            executable = b'"executable":true,' if node.executable else b""
            pending.append(b'{"type":"regular","size":%d,%s"narOffset":%d}' % (node.size, executable, next(offsets)))
        elif isinstance(node, DirectoryNode):
            pending.append(b'{"type":"directory","entries":{')
            open_dirs += 1
            first = True
        else:
            pending.append(b'{"type":"symlink","target":' + _string(node.target) + b"}")
        size += len(pending[-1])
        if size >= PIECE_SIZE:
            yield b"".join(pending)
            pending, size = [], 0
    pending.append(b"}}" * open_dirs + b"}")
    yield b"".join(pending)


def _string(raw: bytes) -> bytes:
    return _STRING(raw.decode("utf-8", "surrogateescape")).encode("utf-8", "surrogateescape")
