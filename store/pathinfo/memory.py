"""In-process PathInfoService for tests and `memory://`; NARs are calculated from castore."""

from __future__ import annotations

import threading
from typing import Iterator

from castore.nodes import Node, encode_node, rename
from castore.url import CAStore
from store.pathinfo.model import PathInfo
from store.pathinfo.service import PathInfoService


class MemoryPathInfoService(PathInfoService):
    def __init__(self, castore: CAStore) -> None:
        self._castore = castore
        self._infos: dict[bytes, PathInfo] = {}
        self._nars: dict[bytes, tuple[int, bytes]] = {}
        self._lock = threading.Lock()

    def get(self, digest: bytes) -> PathInfo | None:
        return self._infos.get(bytes(digest))

    def put(self, info: PathInfo) -> PathInfo:
        with self._lock:
            self._infos[info.store_path.digest] = info
        return info

    def list(self) -> Iterator[PathInfo]:
        return iter(list(self._infos.values()))

    def calculate_nar(self, node: Node) -> tuple[int, bytes]:
        from store.nar.render import calculate_nar

        key = encode_node(rename(node, b""))
        if (cached := self._nars.get(key)) is None:
            cached = self._nars[key] = calculate_nar(self._castore, rename(node, b""))
        return cached
