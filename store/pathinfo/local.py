"""PathInfoService in the embedded store: records beside castore's, through the same engine.

The tables are this layer's own: castore stores them without knowing what they mean.
"""

from __future__ import annotations

import dataclasses
import itertools
import struct
from typing import Iterator

from castore.local.engine import EngineUser, LocalEngine
from castore.nodes import Node, encode_node, rename
from castore.storage.metadata import Table
from castore.url import CAStore
from store.gc.retention import ADDED, Touches, stamp, unstamp
from store.pathinfo.model import PathInfo
from store.pathinfo.service import PathInfoService

PATHINFO = Table("pathinfo")
"""20-byte store path digest -> PathInfo encoding."""
NARHASH = Table("narhash")
"""NAR sha256 -> 20-byte store path digest, for NAR URLs."""
NARCALC = Table("narcalc")
"""Encoded root node -> cached NAR size (u64) and sha256."""
EXTRAS = Table("narinfo-extras")
"""20-byte store path digest -> the PathInfo's narinfo extras."""
LIST_PAGE = 1000


class LocalPathInfoService(EngineUser, PathInfoService):
    def __init__(self, engine: LocalEngine, castore: CAStore) -> None:
        super().__init__(engine)
        self._castore = castore
        self._served = Touches(engine.records)

    def get(self, digest: bytes) -> PathInfo | None:
        """A path info; serving it counts for retention (see store/gc/retention.py)."""
        raw = self.engine.records.get(PATHINFO, bytes(digest))
        if raw is None:
            return None
        self._served.touch(digest)
        return self._with_extras(PathInfo.decode(raw))

    def _with_extras(self, info: PathInfo) -> PathInfo:
        return _with_extras(info, self.engine.records.get(EXTRAS, info.store_path.digest))

    def put(self, info: PathInfo) -> PathInfo:
        if info.extras is not None:
            self.engine.records.stage(EXTRAS, [(info.store_path.digest, info.extras.encode())])
        self.engine.records.stage(NARHASH, [(info.nar_sha256, info.store_path.digest)])
        self.engine.records.stage(ADDED, [(info.store_path.digest, stamp())])
        self.engine.records.put(PATHINFO, [(info.store_path.digest, info.encode())])
        return info

    def close(self) -> None:
        if self._engine is not None:
            self._served.flush()
        super().close()

    def list(self) -> Iterator[PathInfo]:
        """A page of path infos at a time, with their extras in one lookup per page (not one per path:
        on PostgreSQL each is a round trip)."""
        records = iter(self.engine.records.items(PATHINFO))
        while page := list(itertools.islice(records, LIST_PAGE)):
            extras = self.engine.records.get_many(EXTRAS, [digest for digest, _ in page])
            for (_, raw), extra in zip(page, extras):
                yield _with_extras(PathInfo.decode(raw), extra)

    def registration_times(self, digests: list[bytes]) -> list[int | None]:
        return [None if raw is None else unstamp(raw) for raw in self.engine.records.get_many(ADDED, digests)]

    def get_by_nar_sha256(self, nar_sha256: bytes) -> PathInfo | None:
        digest = self.engine.records.get(NARHASH, bytes(nar_sha256))
        info = None if digest is None else self.get(digest)
        # A re-put of the path with another NAR leaves the old index entry behind.
        return info if info is not None and info.nar_sha256 == bytes(nar_sha256) else None

    def calculate_nar(self, node: Node) -> tuple[int, bytes]:
        from store.nar.render import calculate_nar

        root = rename(node, b"")
        key = encode_node(root)
        if (raw := self.engine.records.get(NARCALC, key)) is not None:
            return struct.unpack_from("<Q", raw)[0], raw[8:]
        size, sha256 = calculate_nar(self._castore, root)
        self.engine.records.put(NARCALC, [(key, struct.pack("<Q", size) + sha256)])
        return size, sha256


def _with_extras(info: PathInfo, raw: bytes | None) -> PathInfo:
    """`info` with the extras record `raw` (None: it has none)."""
    if raw is None:
        return info
    from store.narinfo import NarinfoExtras  # most paths have none: a dump need not load narinfo

    return dataclasses.replace(info, extras=NarinfoExtras.decode(raw))
