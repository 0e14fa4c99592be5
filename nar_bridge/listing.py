"""`<hash>.ls`: the JSON listing of a path's NAR, in the format of Nix's `write-nar-listing` files.

`{"version": 1, "root": node}` where a node is `{"type": "directory", "entries": {name: node}}`,
`{"type": "regular", "size": N, "executable": true?, "narOffset": M}` or
`{"type": "symlink", "target": T}`. `narOffset` is where the file's contents start in
the NAR, so a client can fetch one file with a Range request. Everything comes from the
NAR's layout: no file contents are read.

Names and targets that are not UTF-8 are written as their raw bytes, as Nix does.
"""

from __future__ import annotations

import json

from castore.nodes import DirectoryNode, FileNode
from store.nar.layout import NarLayout


def nar_listing(layout: NarLayout) -> bytes:
    """The listing document of a root's NAR, as bytes."""
    document = {"version": 1, "root": _tree(layout)}
    return json.dumps(document, ensure_ascii=False, separators=(",", ":")).encode("utf-8", "surrogateescape")


def _tree(layout: NarLayout) -> dict:
    """The `root` of the listing: the layout's nodes (in NAR order, with depths) nested again."""
    offsets = iter(layout.offsets)
    parents: list[dict] = []  # the entries of each directory above the node being placed
    root: dict = {}
    for depth, node in layout.nodes:
        del parents[depth:]
        if isinstance(node, FileNode):
            out: dict = {"type": "regular", "size": node.size}
            if node.executable:
                out["executable"] = True
            out["narOffset"] = next(offsets)
        elif isinstance(node, DirectoryNode):
            out = {"type": "directory", "entries": {}}
        else:
            out = {"type": "symlink", "target": _text(node.target)}
        if depth:
            parents[-1][_text(node.name)] = out
        else:
            root = out
        if isinstance(node, DirectoryNode):
            parents.append(out["entries"])
    return root


def _text(raw: bytes) -> str:
    return raw.decode("utf-8", "surrogateescape")
