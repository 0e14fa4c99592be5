"""The castore porcelain: the verbs of `cairn castore ...` for programs to call directly.

    from castore import api
    with api.open_castore("local:///var/lib/cairn") as store:
        node, stats = api.import_path(store, "some/dir")
        data = api.read_blob(store, digest)
        for path, child in api.walk(store, node): ...
        api.export_node(store, node, "copy/of/dir")
"""

from __future__ import annotations

import base64
import binascii

from castore.digest import B3Digest
from castore.errors import NotFoundError, ValidationError
from castore.export import export_node, walk
from castore.ingest import ImportStats, import_path
from castore.nodes import DirectoryNode, FileNode, Node, SymlinkNode, decode_node, encode_node
from castore.url import CAStore, default_store_url, open_castore

__all__ = ["CAStore", "ImportStats", "open_castore", "default_store_url", "import_path",
           "export_node", "walk", "read_blob", "node_to_text", "node_from_text", "resolve_root",
           "describe_node"]


def read_blob(store: CAStore, digest: B3Digest) -> bytes:
    """A whole blob in memory (use store.blobs.open_read to stream a large one)."""
    reader = store.blobs.open_read(B3Digest(digest))
    if reader is None:
        raise NotFoundError(f"blob {B3Digest(digest)} not found")
    with reader:
        return reader.read()


def node_to_text(node: Node) -> str:
    """A root node as unpadded base64url of its encoding (the nar-bridge URL form)."""
    return base64.urlsafe_b64encode(encode_node(node)).rstrip(b"=").decode()


def node_from_text(text: str) -> Node:
    try:
        raw = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except (binascii.Error, ValueError):
        raise ValidationError(f"not a base64url node: {text!r}") from None
    return decode_node(raw)


def resolve_root(store: CAStore, text: str) -> Node:
    """A root from a digest (directory first, else blob) or a base64url node."""
    if not (text.startswith(("b3:", "blake3-")) or len(text) == 64):
        return node_from_text(text)
    digest = B3Digest.parse(text)
    directory = store.directories.get(digest)
    if directory is not None:
        return directory.as_node()
    blob = store.blobs.stat(digest)
    if blob is not None:
        return FileNode(b"", digest, blob.size)
    raise NotFoundError(f"no directory or blob {digest}")


def describe_node(node: Node, *, with_text: bool = True) -> str:
    """One line: kind, digest or target, size, and (optionally) the node's text form."""
    if isinstance(node, DirectoryNode):
        head = f"directory {node.digest} size={node.size}"
    elif isinstance(node, FileNode):
        head = f"file {node.digest} size={node.size}" + (" executable" if node.executable else "")
    elif isinstance(node, SymlinkNode):
        head = f"symlink -> {node.target.decode(errors='backslashreplace')}"
    return f"{head} node={node_to_text(node)}" if with_text else head
