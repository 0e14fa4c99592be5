"""Content-addressed paths certify themselves, as in Nix: a path whose store path follows from
its CA field and references, and whose contents have that CA hash, needs no signature.

Read-through (nix+http) and `cairn verify --trusted-public-keys` accept such paths unsigned.
"""

from __future__ import annotations

from typing import Iterable, Iterator

from castore.errors import NotFoundError, ValidationError
from castore.nodes import FileNode
from castore.url import CAStore
from store.contentaddress import CAMethod, ContentAddress
from store.nixhash import HashAlgo
from store.pathinfo.model import PathInfo
from store.storepath import StorePath

PIECE = 1 << 20


def gives_its_path(store_path: StorePath, ca: ContentAddress | None, references: Iterable[StorePath]) -> bool:
    """Whether the CA and references give `store_path`, as Nix's isContentAddressed."""
    if ca is None:
        return False
    references = list(references)
    others = [r for r in references if r != store_path]
    try:
        return ca.store_path(store_path.name, others, len(others) != len(references)) == store_path
    except ValidationError:  # a CA that cannot have such references
        return False


def has_ca_hash(castore: CAStore, info: PathInfo) -> bool:
    """Whether the stored contents hash to the CA hash: the NAR's for `fixed:r:`, the file's
    otherwise. A NAR sha256 is compared with NarHash, which the caller has checked."""
    ca = info.ca
    if ca is None:
        return False
    if ca.method is CAMethod.NAR:
        if ca.hash.algo is HashAlgo.SHA256:
            return ca.hash.digest == info.nar_sha256
        from store.nar.render import render_nar

        pieces: Iterator[bytes] = render_nar(castore, info.node)
    elif isinstance(info.node, FileNode):
        pieces = _blob_pieces(castore, info.node)
    else:
        return False  # flat and text addresses are of a regular file
    h = ca.hash.algo.new()
    for piece in pieces:
        h.update(piece)
    return h.digest() == ca.hash.digest


def _blob_pieces(castore: CAStore, node: FileNode) -> Iterator[bytes]:
    reader = castore.blobs.open_read(node.digest)
    if reader is None:
        raise NotFoundError(f"blob {node.digest} is gone from the store")
    with reader:
        while piece := reader.read(PIECE):
            yield piece
