"""The signing wrapper: every path info read through it carries a signature by each key.

Signing on the way out (as attic does) rather than when a path is stored means a key added
later signs every path already held, and a rotated key leaves no stale signatures behind.
Signatures stored with a path (from an upload or an upstream cache) are kept.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Callable, Iterator

from castore.nodes import Node
from castore.url import CAStore
from store.pathinfo.model import PathInfo
from store.pathinfo.service import PathInfoService
from store.signing import SecretKey, fingerprint

if TYPE_CHECKING:
    from store.nar.layout import NarLayout


class SigningPathInfoService(PathInfoService):
    """Closing it leaves the inner service open: the composition that built it closes it."""

    def __init__(self, inner: PathInfoService, keys: tuple[SecretKey, ...]) -> None:
        self.inner = inner
        self.keys = keys
        self.read_only = inner.read_only

    def _signed(self, info: PathInfo | None) -> PathInfo | None:
        if info is None or not self.keys:
            return info
        # Nix signs references in sorted order, whatever order a record keeps them in.
        message = fingerprint(info.store_path, info.nar_sha256, info.nar_size, sorted(info.references))
        return info.with_signatures(tuple(key.sign(message) for key in self.keys))

    def get(self, digest: bytes) -> PathInfo | None:
        return self._signed(self.inner.get(digest))

    def get_by_nar_sha256(self, nar_sha256: bytes) -> PathInfo | None:
        return self._signed(self.inner.get_by_nar_sha256(nar_sha256))

    def list(self) -> Iterator[PathInfo]:
        return (self._signed(info) for info in self.inner.list())

    def put(self, info: PathInfo) -> PathInfo:
        return self.inner.put(info)

    def update(self, digest: bytes, decide: Callable[[PathInfo | None], PathInfo | None]) -> PathInfo | None:
        return self._signed(self.inner.update(digest, decide))

    def nar(self, castore: CAStore, node: Node, *, check_blobs: bool = False,
            layout: NarLayout | None = None, flush: int | None = None) -> Iterator[bytes]:
        return self.inner.nar(castore, node, check_blobs=check_blobs, layout=layout, flush=flush)

    def calculate_nar(self, node: Node) -> tuple[int, bytes]:
        return self.inner.calculate_nar(node)
