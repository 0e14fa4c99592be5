"""The bridge's core: the store, its worker threads and records, and the lookups every handler shares.

Handlers only parse requests and shape responses; what a NAR name or a store path
digest resolves to is decided here, against the Store interfaces (never a backend).
"""

from __future__ import annotations

import asyncio
import collections
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Generic, TypeVar

from aiohttp import web

from castore.durations import STALL_TIMEOUT
from castore.nodes import DirectoryNode, FileNode, Node
from castore.probing import BoundedProbe
from castore.tally import Tally
from castore.url import CAStore
from store.pathinfo.model import PathInfo
from store.records.service import Namespace
from store.records.staged import StagedNar
from store.signing import SecretKey
from store.url import Store
from nar_bridge import DEFAULT_PRIORITY
from nar_bridge.closures import ClosureCache
from nar_bridge.names import NarFile
from nar_bridge.nar_cache import NAR_CACHE_BYTES, NarCache
from nar_bridge.threads import Workers

T = TypeVar("T")
K = TypeVar("K")
RECENT_ENTRIES = 4096
RECENT_SECONDS = 10.0


@dataclass(frozen=True)
class BridgeConfig:
    priority: int = DEFAULT_PRIORITY
    read_only: bool = False
    token: str | None = None
    sign_keys: tuple[SecretKey, ...] = ()
    """What signs realisations on the way out (narinfos: the store's signing wrapper)."""
    nar_cache: Path | None = None
    """Where hot rendered NARs are kept (see nar_cache); None: every NAR is rendered."""
    nar_cache_bytes: int = NAR_CACHE_BYTES
    stall_timeout: float = STALL_TIMEOUT
    """Seconds a rendered NAR's client may take nothing before its connection is closed: a render
    waiting on it holds one of the stream workers."""


class Recent(Generic[K, T]):
    """What was answered lately, for RECENT_SECONDS: a hot narinfo is served without a worker hop.

    A store path's narinfo only ever changes by gaining signatures, and clients keep
    narinfos for days, so a few seconds' delay before another process's change shows is
    harmless; this bridge's own writes drop their entry at once. Used from the event loop only.
    """

    def __init__(self, entries: int = RECENT_ENTRIES, seconds: float = RECENT_SECONDS) -> None:
        self._entries = entries
        self._seconds = seconds
        self._values: collections.OrderedDict[K, tuple[float, T]] = collections.OrderedDict()
        self.lookups = Tally()
        """Lookups, "hit" or "miss", for metrics."""

    def get(self, key: K) -> T | None:
        found = self._values.get(key)
        if found is None or found[0] < time.monotonic():
            self.lookups.add("miss")
            return None
        self.lookups.add("hit")
        return found[1]

    def put(self, key: K, value: T) -> None:
        self._values[key] = (time.monotonic() + self._seconds, value)
        self._values.move_to_end(key)
        if len(self._values) > self._entries:
            self._values.popitem(last=False)

    def drop(self, key: K) -> None:
        self._values.pop(key, None)


class Bridge:
    """Owns the store for the app's lifetime; close() releases threads and store.

    Read-through of upstream caches and signing are the store's (combinators the command
    line composes in front of its path infos), so the bridge only asks it.
    """

    def __init__(self, store: Store, config: BridgeConfig) -> None:
        self.store = store
        self.config = config
        self.workers = Workers()
        self.staged = Namespace(store.records, "staged")
        self.logs = Namespace(store.records, "log")
        self.recent_narinfos: Recent[bytes, str] = Recent()
        self.recent_nars: Recent[str, StagedNar] = Recent()
        """NARs found by file name lately: a hot NAR is sent from the NAR cache without a lookup."""
        self.closures = ClosureCache()
        self.nar_cache = None if config.nar_cache is None else NarCache(config.nar_cache, config.nar_cache_bytes)
        self.probe = BoundedProbe(store.castore.probe)
        """What /healthz asks (see health.py)."""

    async def with_path_info(self, digest: bytes, then: Callable[[PathInfo], T]) -> T | None:
        """`then(info)` for the path with this digest, in the same worker call as the lookup;
        None when nobody has the path."""
        def lookup() -> T | None:
            info = self.store.pathinfo.get(digest)
            return None if info is None else then(info)

        return await self.workers.call(lookup)

    def find_nar(self, nar: NarFile) -> StagedNar | None:
        """Blocking: a NAR by file name; an uncompressed one by NarHash among the paths, else an upload."""
        if nar.compression == "none":
            info = self.store.pathinfo.get_by_nar_sha256(nar.file_sha256)
            if info is not None:
                return StagedNar(info.node, info.nar_size, info.nar_sha256, info.nar_size)
        raw = self.staged.get(nar.name)
        return None if raw is None else StagedNar.decode(raw)

    async def close(self) -> None:
        """Off the event loop: a worker still reading a request body needs the loop to finish."""
        await asyncio.to_thread(self._close_workers_and_store)

    def _close_workers_and_store(self) -> None:
        self.workers.close()
        self.store.close()


def root_exists(castore: CAStore, node: Node) -> bool:
    """Blocking: whether a root's top object is still in castore (a cheap check, not the closure)."""
    if isinstance(node, DirectoryNode):
        return castore.directories.get(node.digest) is not None
    if isinstance(node, FileNode):
        return castore.blobs.has(node.digest)
    return True


BRIDGE = web.AppKey("bridge", Bridge)
