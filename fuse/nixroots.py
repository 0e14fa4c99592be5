"""The root of a store mount: store path basenames, resolved through PathInfoService."""

from __future__ import annotations

from typing import Iterable

from castore.errors import ValidationError
from castore.nodes import Node
from fuse.roots import RootSource
from store.pathinfo.service import PathInfoService
from store.storepath import StorePath


class StorePathRoots(RootSource):
    """Looks names up one by one; lists them all only when `listable` (a store may be huge)."""

    def __init__(self, pathinfo: PathInfoService, *, listable: bool) -> None:
        self._pathinfo = pathinfo
        self._listable = listable

    def lookup(self, name: bytes) -> Node | None:
        try:
            path = StorePath.from_basename(name.decode("ascii"))
        except (UnicodeDecodeError, ValidationError):
            return None
        info = self._pathinfo.get(path.digest)
        if info is None or info.store_path != path:
            return None
        return info.node

    def list(self) -> Iterable[Node]:
        return [info.node for info in self._pathinfo.list()] if self._listable else []
