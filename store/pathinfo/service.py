"""The PathInfoService interface: what every path-info backend offers."""

from __future__ import annotations

import threading
from abc import ABC, abstractmethod
from typing import TYPE_CHECKING, Callable, Iterator

from castore.nodes import Node
from store.pathinfo.model import PathInfo

if TYPE_CHECKING:
    from castore.directories.service import DirectoryService
    from castore.url import CAStore
    from store.nar.layout import NarLayout
    from store.nar.skeleton import NarSkeleton


class PathInfoService(ABC):
    read_only = False
    """Whether put always refuses (an HTTP binary cache read through): a cache in front of it
    then keeps writes in its near store."""

    @abstractmethod
    def get(self, digest: bytes) -> PathInfo | None:
        """By the 20-byte digest of the store path; None when unknown."""

    @abstractmethod
    def put(self, info: PathInfo) -> PathInfo:
        """Store (replacing an earlier record of the same path); returns what was stored."""

    def update(self, digest: bytes, decide: Callable[[PathInfo | None], PathInfo | None]) -> PathInfo | None:
        """Read, decide and write one path's record as one step: `decide(the path's info, or None)`
        says what to store (None, or what is there: nothing); returns what the path has after.
        No other update of the path, in any process sharing the store, comes between the read
        and the write, and the write is durable before the next one reads. Default: one
        process's updates only (a store only this process holds, or a daemon that does this
        itself behind its put)."""
        with _UPDATES[digest[0] % len(_UPDATES)]:
            existing = self.get(digest)
            wanted = decide(existing)
            return existing if wanted is None or wanted == existing else self.put(wanted)

    @abstractmethod
    def list(self) -> Iterator[PathInfo]:
        """Every path info, in no particular order."""

    @abstractmethod
    def calculate_nar(self, node: Node) -> tuple[int, bytes]:
        """NAR size and sha256 of a root node (its name is ignored)."""

    def nar_skeleton(self, directories: DirectoryService, node: Node) -> NarSkeleton:
        """What rendering the whole NAR of `node` needs (see store/nar/skeleton.py), laid out from
        `directories`; a backend that can keep it keeps it per root, so the next render reads it
        back instead of walking the tree. NotFoundError for a directory missing from the closure."""
        from store.nar.layout import lay_out
        from store.nar.skeleton import NarSkeleton

        return NarSkeleton.of(lay_out(directories, node))

    def nar(self, castore: CAStore, node: Node, *, check_blobs: bool = False,
            layout: NarLayout | None = None, flush: int | None = None) -> Iterator[bytes]:
        """The NAR of `node` in pieces, rendered from `castore` (a remote daemon renders it itself).
        Its skeleton is had before this returns: a missing directory raises NotFoundError here, and
        with `check_blobs` a missing blob too (one lookup of all), so nothing is sent of a NAR that
        cannot be whole. A blob found missing or damaged later raises as the pieces are taken.
        `layout`, node's layout when the caller keeps one (nar-bridge does), is rendered from
        instead of a skeleton looked up again; grammar and small contents are gathered into pieces
        of about `flush` bytes (FLUSH_SIZE by default; a consumer that hands each piece on wants
        them large)."""
        from store.nar.render import FLUSH_SIZE, render_layout, require_blobs

        skeleton = layout if layout is not None else self.nar_skeleton(castore.directories, node)
        if check_blobs:
            require_blobs(castore.blobs, skeleton)
        return render_layout(castore.blobs, skeleton, FLUSH_SIZE if flush is None else flush)

    def registration_times(self, digests: list[bytes]) -> list[int | None]:
        """When each of these paths was added (Unix seconds), None where not known; default: unknown."""
        return [None] * len(digests)

    def get_by_nar_sha256(self, nar_sha256: bytes) -> PathInfo | None:
        """A path whose NAR has this sha256 (for NAR URLs); default: a scan."""
        return next((i for i in self.list() if i.nar_sha256 == nar_sha256), None)

    def close(self) -> None:
        """Release connections and files."""


_UPDATES = [threading.Lock() for _ in range(64)]
"""PathInfoService.update's default: this process's updates of one path, one at a time."""
