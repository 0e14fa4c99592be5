"""The near/far path-info cache: read near; on a miss ask far and keep its answer in near.

Writes go to far, the source of truth, unless far is read-only (an HTTP binary cache read
through, see nix_http.py): then near is the store that keeps them, and this is the
read-through of nar-bridge's --upstream, the daemon and the mount alike. Concurrent misses
for one path ask far once.
"""

from __future__ import annotations

from typing import Callable, Iterator

from castore.nodes import Node
from castore.singleflight import SingleFlight
from castore.tally import Tally
from store.pathinfo.model import PathInfo
from store.pathinfo.service import PathInfoService


class CachePathInfoService(PathInfoService):
    """Closing it leaves near and far open: the composition that built them closes them."""

    def __init__(self, near: PathInfoService, far: PathInfoService) -> None:
        self.near = near
        self.far = far
        self._keeper = near if far.read_only else far
        """Where writes, listings and NAR calculations go."""
        self._misses: SingleFlight[bytes, PathInfo | None] = SingleFlight()
        self.lookups = Tally()
        """get()s answered by near ("hit") or sent to far ("miss"), for metrics."""
        self.fetches = Tally()
        """Asks of far: "found", "missing" or "failed", for metrics."""

    def get(self, digest: bytes) -> PathInfo | None:
        found = self.near.get(digest)
        self.lookups.add("miss" if found is None else "hit")
        return found if found is not None else self._misses.run(bytes(digest), lambda: self._miss(digest))

    def _miss(self, digest: bytes) -> PathInfo | None:
        """Ask far; keep what it finds in near."""
        try:
            found = self.far.get(digest)
        except BaseException:
            self.fetches.add("failed")
            raise
        self.fetches.add("missing" if found is None else "found")
        return None if found is None else self.near.put(found)

    def put(self, info: PathInfo) -> PathInfo:
        return self._keeper.put(info)

    def update(self, digest: bytes, decide: Callable[[PathInfo | None], PathInfo | None]) -> PathInfo | None:
        return self._keeper.update(digest, decide)

    def list(self) -> Iterator[PathInfo]:
        return self._keeper.list()

    def get_by_nar_sha256(self, nar_sha256: bytes) -> PathInfo | None:
        return self.near.get_by_nar_sha256(nar_sha256) or self.far.get_by_nar_sha256(nar_sha256)

    def calculate_nar(self, node: Node) -> tuple[int, bytes]:
        return self._keeper.calculate_nar(node)
