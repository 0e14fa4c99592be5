"""PathInfoService in the embedded store: records beside castore's, through the same engine.

The tables are this layer's own: castore stores them without knowing what they mean.
"""

from __future__ import annotations

import itertools
import struct
from typing import TYPE_CHECKING, Callable, Iterator

from castore.errors import BackendError
from castore.local.engine import EngineUser, LocalEngine
from castore.nodes import DirectoryNode, Node, encode_node, rename
from castore.storage.metadata import MetadataStore, Table
from castore.url import CAStore
from store.gc.retention import ADDED, Touches, stamp, unstamp
from store.pathinfo.model import PathInfo
from store.pathinfo.service import PathInfoService

if TYPE_CHECKING:
    from castore.directories.service import DirectoryService
    from store.nar.skeleton import NarSkeleton

PATHINFO = Table("pathinfo")
"""20-byte store path digest -> PathInfo encoding."""
NARHASH = Table("narhash")
"""NAR sha256 + 20-byte store path digest -> that digest, for NAR URLs: one entry per path, since
paths of equal contents share a NAR and any of them serves it. (Stores made before had one
entry per NAR, keyed by the sha256 alone, naming the last path put: `index_every_path`
replaces it.)"""
INDEXED = Table("narhash-indexed", insert_only=True)
"""b"every-path" once NARHASH has an entry for every path, not only the last one per NAR."""
EVERY_PATH = b"every-path"
NARHASH_PAGE = 16
"""Index entries read at a time when looking up a NAR (most NARs belong to one path)."""
NARCALC = Table("narcalc")
"""Encoded root node -> cached NAR size (u64) and sha256."""
NARSKELETON = Table("nar-skeleton")
"""Root directory digest -> its NAR's skeleton (store/nar/skeleton.py): made on a first render."""
EXTRAS = Table("narinfo-extras")
"""20-byte store path digest -> the PathInfo's narinfo extras."""
LIST_PAGE = 1000
PATH_LOCKS = 64
"""Locks a store's path updates are spread over (by their digest's first byte): few lock files
for LMDB, and an update waits only for those of the same stripe."""
_SHA256_SIZE = 32
"""The length of an old-layout NARHASH key."""


class LocalPathInfoService(EngineUser, PathInfoService):
    def __init__(self, engine: LocalEngine, castore: CAStore) -> None:
        super().__init__(engine)
        self._castore = castore
        self._served = Touches(engine.records)
        self._legacy = not index_every_path(engine.metadata)
        """Whether NARHASH may still have the old layout (a read-only store nobody upgraded)."""

    def get(self, digest: bytes) -> PathInfo | None:
        """A path info; serving it counts for retention (see store/gc/retention.py)."""
        raw = self.engine.records.get(PATHINFO, bytes(digest))
        return None if raw is None else self._served_info(PathInfo.decode(raw))

    def _served_info(self, info: PathInfo) -> PathInfo:
        self._served.touch(info.store_path.digest)
        return self._with_extras(info)

    def _with_extras(self, info: PathInfo) -> PathInfo:
        return _with_extras(info, self.engine.records.get(EXTRAS, info.store_path.digest))

    def put(self, info: PathInfo) -> PathInfo:
        if info.extras is not None:
            self.engine.records.stage(EXTRAS, [(info.store_path.digest, info.extras.encode())])
        self.engine.records.stage(NARHASH, [(narhash_key(info), info.store_path.digest)])
        self.engine.records.stage(ADDED, [(info.store_path.digest, stamp())])
        self.engine.records.put(PATHINFO, [(info.store_path.digest, info.encode())])
        return info

    def update(self, digest: bytes, decide: Callable[[PathInfo | None], PathInfo | None]) -> PathInfo | None:
        """Under the store's lock for the path (a metadata lock: every process and machine sharing
        the store takes the same one), committed before the lock goes."""
        with self.engine.metadata.lock(f"path-info-{digest[0] % PATH_LOCKS:02x}"):
            raw = self.engine.records.get(PATHINFO, bytes(digest))  # not a serving: no retention stamp
            existing = None if raw is None else self._with_extras(PathInfo.decode(raw))
            wanted = decide(existing)
            if wanted is None or wanted == existing:
                return existing
            stored = self.put(wanted)  # outside a batch: committed on return
            if self.engine.records.in_batch():
                self.engine.records.commit()  # in one: committed now all the same
            return stored

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
        """The first indexed path that still has this NAR: an entry outlives a re-put of its path
        with another NAR, so a few are read at a time (entries are committed ones: one put in a
        batch still open is not found yet)."""
        nar = bytes(nar_sha256)
        legacy = self.engine.metadata.get(NARHASH, nar) if self._legacy else None
        digests = [] if legacy is None else [legacy]
        after = nar
        while True:
            page = self.engine.metadata.scan(NARHASH, after, NARHASH_PAGE)
            matching = [digest for key, digest in page if key.startswith(nar)]
            for raw in self.engine.records.get_many(PATHINFO, digests + matching):
                if raw is not None and (info := PathInfo.decode(raw)).nar_sha256 == nar:
                    return self._served_info(info)
            if len(matching) < NARHASH_PAGE:
                return None
            digests, after = [], page[-1][0]

    def nar_skeleton(self, directories: DirectoryService, node: Node) -> NarSkeleton:
        """Kept per root directory, read back when a record for it is whole, made (and kept, when
        the store is writable and the root is not too wide) when not. Whatever store it was made
        from, the record is right for the root's digest."""
        from store.nar.skeleton import MAX_FILES, NarSkeleton

        if not isinstance(node, DirectoryNode):
            return super().nar_skeleton(directories, node)  # one node: nothing to walk
        key = bytes(node.digest)
        if (raw := self.engine.records.get(NARSKELETON, key)) is not None and \
                (skeleton := NarSkeleton.decode(raw)) is not None:
            return skeleton
        skeleton = super().nar_skeleton(directories, node)
        if len(skeleton.digests) <= MAX_FILES and not self.engine.metadata.read_only:
            try:
                self.engine.records.put(NARSKELETON, [(key, skeleton.encode())])
            except BackendError:
                pass  # a full disk must not fail a read: the next render tries again
        return skeleton

    def calculate_nar(self, node: Node) -> tuple[int, bytes]:
        from store.nar.render import calculate_nar

        root = rename(node, b"")
        key = encode_node(root)
        if (raw := self.engine.records.get(NARCALC, key)) is not None:
            return struct.unpack_from("<Q", raw)[0], raw[8:]
        size, sha256 = calculate_nar(self._castore, root)
        self.engine.records.put(NARCALC, [(key, struct.pack("<Q", size) + sha256)])
        return size, sha256


def narhash_key(info: PathInfo) -> bytes:
    """The NARHASH key of this path's entry (deleting the path deletes it)."""
    return info.nar_sha256 + info.store_path.digest


def index_every_path(metadata: MetadataStore) -> bool:
    """Once per store: give NARHASH an entry for every path, replacing the old layout's one per
    NAR (deleting the path it named lost the NAR for the others). One pass over the path infos,
    a page per commit; repeating it (two processes at once, a crash midway) writes the same.
    Whether NARHASH has the new layout (False: a read-only store not upgraded yet)."""
    if metadata.get(INDEXED, EVERY_PATH) is not None:
        return True
    if metadata.read_only:
        return False
    from castore.local.sweep import COMMIT_RECORDS, delete_where  # GC's code: an upgrade once per store needs it

    records = iter(metadata.items(PATHINFO))
    while page := [PathInfo.decode(raw) for _, raw in itertools.islice(records, COMMIT_RECORDS)]:
        metadata.commit({NARHASH: {narhash_key(info): info.store_path.digest for info in page}})
    delete_where(metadata, NARHASH, lambda key, _: len(key) == _SHA256_SIZE)
    metadata.commit({INDEXED: {EVERY_PATH: b"1"}})
    return True


def _with_extras(info: PathInfo, raw: bytes | None) -> PathInfo:
    """`info` with the extras record `raw` (None: it has none)."""
    if raw is None:
        return info
    from store.narinfo import NarinfoExtras  # most paths have none: a dump need not load narinfo

    return info._replace(extras=NarinfoExtras.decode(raw))
