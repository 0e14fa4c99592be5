"""The admission wrapper: a path info is stored only when the store backs it, the gate in front
of writers that are not trusted (the daemon's gRPC clients).

What a client sends is a claim. Like Nix, which takes a substituted path as valid only once its
NAR hash checks out and never changes a valid path afterwards, a Put here is accepted only when
- every reference (but the path itself) is already in the store,
- the root node's closure is (every directory and blob), with the root's size its target's,
- NarHash and NarSize are those of the node's NAR (CalculateNAR, cached by root node), and
- the path is new, or already held with that same NAR: then only its signatures are added
  (`nix store sign` can add signatures to a valid path; nothing else changes it).
Since every stored NarHash is then the hash of the path's real NAR, the NAR-hash index (the
`nar/<NarHash>.nar` URLs) can only ever lead to the bytes it names.
"""

from __future__ import annotations

from typing import Iterator

from castore.errors import NotFoundError, ValidationError
from castore.nodes import DirectoryNode, FileNode, Node
from castore.url import CAStore
from store import nixbase32
from store.nar.layout import NarLayout, lay_out
from store.nar.render import require_blobs
from store.pathinfo.model import PathInfo
from store.pathinfo.service import PathInfoService


class CheckedPathInfoService(PathInfoService):
    """Closing it leaves the inner service open: whoever built that closes it."""

    def __init__(self, inner: PathInfoService, castore: CAStore) -> None:
        self.inner = inner
        self.castore = castore
        self.read_only = inner.read_only

    def get(self, digest: bytes) -> PathInfo | None:
        return self.inner.get(digest)

    def get_by_nar_sha256(self, nar_sha256: bytes) -> PathInfo | None:
        return self.inner.get_by_nar_sha256(nar_sha256)

    def list(self) -> Iterator[PathInfo]:
        return self.inner.list()

    def nar(self, castore: CAStore, node: Node, *, check_blobs: bool = False,
            layout: NarLayout | None = None, flush: int | None = None) -> Iterator[bytes]:
        return self.inner.nar(castore, node, check_blobs=check_blobs, layout=layout, flush=flush)

    def calculate_nar(self, node: Node) -> tuple[int, bytes]:
        """The inner service's (cached) answer, for a root whose size is its target's: the cache is
        keyed by the root node, so a false size must not get that far."""
        _check_root(self.castore, node)
        return self.inner.calculate_nar(node)

    def put(self, info: PathInfo) -> PathInfo:
        """The checks of a new path run before the update; whether the path exists is decided in
        it (see PathInfoService.update), so two concurrent Puts of one path, in this process or
        in two daemons sharing a store, cannot both land as its first version, nor one's added
        signatures replace the other's."""
        checked = self.inner.get(info.store_path.digest) is None
        if checked:
            self._check_new(info)

        def decide(existing: PathInfo | None) -> PathInfo:
            if existing is not None:
                return self._with_signatures(existing, info)
            if not checked:  # deleted since
                self._check_new(info)
            return info

        return self.inner.update(info.store_path.digest, decide)

    def _check_new(self, info: PathInfo) -> None:
        path = info.store_path
        unknown = [r.basename for r in info.references if r != path and self.inner.get(r.digest) is None]
        if unknown:
            raise ValidationError(f"{path}: unknown references: {' '.join(unknown)}")
        try:
            _check_closure(self.castore, info.node)
            nar_size, nar_sha256 = self.calculate_nar(info.node)
        except NotFoundError as e:
            raise ValidationError(f"{path}: its contents are not all in the store: {e}") from None
        if (nar_size, nar_sha256) != (info.nar_size, info.nar_sha256):
            raise ValidationError(f"{path}: NarHash and NarSize must be those of its node's NAR, "
                                  f"sha256:{nixbase32.encode(nar_sha256)} and {nar_size}")

    def _with_signatures(self, existing: PathInfo, info: PathInfo) -> PathInfo:
        """A Put of a path already held: the same NAR adds signatures, another is refused."""
        if (existing.nar_sha256, existing.nar_size) != (info.nar_sha256, info.nar_size):
            raise ValidationError(f"{info.store_path} is already valid with NarHash {existing.nar_hash} "
                                  f"and NarSize {existing.nar_size}; a valid path does not change")
        return existing.with_signatures(info.signatures)


def _check_root(castore: CAStore, node: Node) -> None:
    """NotFoundError if the root's target is missing; ValidationError if its size is not the target's."""
    if isinstance(node, DirectoryNode):
        directory = castore.directories.get(node.digest)
        if directory is None:
            raise NotFoundError(f"directory {node.digest} not found")
        actual = directory.size
    elif isinstance(node, FileNode):
        stat = castore.blobs.stat(node.digest)
        if stat is None:
            raise NotFoundError(f"blob {node.digest} not found")
        actual = stat.size
    else:
        return
    if actual != node.size:
        raise ValidationError(f"the root node says size {node.size}, but {node.digest} has size {actual}")


def _check_closure(castore: CAStore, node: Node) -> None:
    """NotFoundError naming a directory or blob below `node` that the store lacks (a NAR calculated
    earlier may be cached, so its success proves nothing about what is still there)."""
    require_blobs(castore.blobs, lay_out(castore.directories, node))  # a missing directory: NotFoundError too
