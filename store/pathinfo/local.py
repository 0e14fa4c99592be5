"""PathInfoService in the embedded store: records in the same LMDB environment as castore.

Named databases: `pathinfo` (20-byte digest -> PathInfo encoding), `narhash`
(NAR sha256 -> 20-byte digest, for NAR URLs), `narcalc` (encoded root node -> cached
NAR size and sha256), `narinfo-extras` (20-byte digest -> the PathInfo's narinfo extras).
"""

from __future__ import annotations

import dataclasses
import struct
from typing import Iterator

from castore.local.engine import EngineUser, LocalEngine
from castore.nodes import Node, encode_node, rename
from castore.url import CAStore
from store.pathinfo.model import PathInfo
from store.pathinfo.service import PathInfoService

PATHINFO, NARHASH, NARCALC, EXTRAS = "pathinfo", "narhash", "narcalc", "narinfo-extras"
LIST_PAGE = 1000


class LocalPathInfoService(EngineUser, PathInfoService):
    def __init__(self, engine: LocalEngine, castore: CAStore) -> None:
        super().__init__(engine)
        self._castore = castore
        for name in (PATHINFO, NARHASH, NARCALC, EXTRAS):
            engine.db(name)

    def get(self, digest: bytes) -> PathInfo | None:
        raw = self.engine.get(PATHINFO, bytes(digest))
        return None if raw is None else self._with_extras(PathInfo.decode(raw))

    def _with_extras(self, info: PathInfo) -> PathInfo:
        raw = self.engine.get(EXTRAS, info.store_path.digest)
        if raw is None:
            return info
        from store.narinfo import NarinfoExtras  # most paths have none: a dump need not load narinfo

        return dataclasses.replace(info, extras=NarinfoExtras.decode(raw))

    def put(self, info: PathInfo) -> PathInfo:
        if info.extras is not None:
            self.engine.stage(EXTRAS, [(info.store_path.digest, info.extras.encode())])
        self.engine.stage(NARHASH, [(info.nar_sha256, info.store_path.digest)])
        self.engine.put(PATHINFO, [(info.store_path.digest, info.encode())])
        return info

    def list(self) -> Iterator[PathInfo]:
        """Pages of short read transactions, so a slow consumer holds no snapshot open."""
        env, db = self.engine.env, self.engine.db(PATHINFO)
        after = b""
        while True:
            with env.begin(db=db, buffers=False) as txn:
                cursor = txn.cursor()
                found = cursor.set_range(after)
                page = []
                while found and len(page) < LIST_PAGE:
                    if cursor.key() != after:
                        page.append((cursor.key(), cursor.value()))
                    found = cursor.next()
            if not page:
                return
            after = page[-1][0]
            yield from (self._with_extras(PathInfo.decode(v)) for _, v in page)

    def get_by_nar_sha256(self, nar_sha256: bytes) -> PathInfo | None:
        digest = self.engine.get(NARHASH, bytes(nar_sha256))
        info = None if digest is None else self.get(digest)
        # A re-put of the path with another NAR leaves the old index entry behind.
        return info if info is not None and info.nar_sha256 == bytes(nar_sha256) else None

    def calculate_nar(self, node: Node) -> tuple[int, bytes]:
        from store.nar.render import calculate_nar

        root = rename(node, b"")
        key = encode_node(root)
        if (raw := self.engine.get(NARCALC, key)) is not None:
            return struct.unpack_from("<Q", raw)[0], raw[8:]
        size, sha256 = calculate_nar(self._castore, root)
        self.engine.put(NARCALC, [(key, struct.pack("<Q", size) + sha256)])
        return size, sha256
