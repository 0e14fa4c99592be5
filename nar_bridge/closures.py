"""The NAR layouts of the roots being served: computed once per root, checked, kept for a while.

Fetching and decoding a tree's directories and laying out its NAR is about a third of the
cost of rendering a tree of small files, and checking that every blob exists another
tenth; both happen before the first byte of a response, while the client waits. A client
that reads a path's `.ls` and then ranges of its NAR pays them once. Directories are
content-addressed, so a cached layout is never stale; the blobs are checked again when the
last check is older than BLOB_CHECK_SECONDS (Cairn never deletes blobs, so this only
narrows the window in which a damaged store is noticed mid-stream).
"""

from __future__ import annotations

import collections
import threading
import time
from dataclasses import dataclass

from castore.directories.service import DirectoryService
from castore.nodes import Node, encode_node, rename
from castore.tally import Tally
from castore.url import CAStore
from store.nar.layout import NarLayout, lay_out
from store.nar.render import require_blobs

CLOSURE_CACHE_ENTRIES = 100_000
"""Nodes of cached layouts in all, at about 0.55 KB of Python objects each (measured with
tracemalloc): some 55 MB at most (the seven package trees of the benchmark corpus take 27,561)."""
BLOB_CHECK_SECONDS = 60.0


@dataclass
class Closure:
    layout: NarLayout
    blobs_checked: float = float("-inf")  # time.monotonic() of the last check that every blob exists

    def check_blobs(self, castore: CAStore) -> None:
        """NotFoundError naming a missing blob, unless every blob was there moments ago."""
        now = time.monotonic()
        if now - self.blobs_checked < BLOB_CHECK_SECONDS:
            return
        require_blobs(castore.blobs, self.layout)
        self.blobs_checked = now


class ClosureCache:
    """The layouts of recently served roots, up to `entries` nodes in all; thread-safe."""

    def __init__(self, entries: int = CLOSURE_CACHE_ENTRIES) -> None:
        self._limit = entries
        self._closures: collections.OrderedDict[bytes, Closure] = collections.OrderedDict()
        self._entries = 0
        self._lock = threading.Lock()
        self.lookups = Tally()
        """Lookups, "hit" or "miss", for metrics."""

    def get(self, directories: DirectoryService, node: Node) -> Closure:
        """Blocking: the layout below `node`; NotFoundError when a directory is missing."""
        key = encode_node(rename(node, b""))
        with self._lock:
            cached = self._closures.get(key)
            if cached is not None:
                self._closures.move_to_end(key)
        self.lookups.add("miss" if cached is None else "hit")
        if cached is not None:
            return cached
        closure = Closure(lay_out(directories, node))
        with self._lock:
            if key not in self._closures:
                self._closures[key] = closure
                self._entries += len(closure.layout.nodes)
            while self._entries > self._limit:
                _, evicted = self._closures.popitem(last=False)
                self._entries -= len(evicted.layout.nodes)
        return closure

    def checked(self, castore: CAStore, node: Node) -> NarLayout:
        """Blocking: the layout below `node`, once every blob it names is known to exist."""
        closure = self.get(castore.directories, node)
        closure.check_blobs(castore)
        return closure.layout
