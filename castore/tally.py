"""Counts kept where things happen (cache hits, upstream fetches) and read by metrics at scrape time.

Plain counts, so the layers that keep them never import a metrics library and pay one
locked increment, not a metrics call, on their hot paths.
"""

from __future__ import annotations

import collections
import threading


class Tally:
    """Thread-safe counts by outcome name."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._counts: collections.Counter[str] = collections.Counter()

    def add(self, outcome: str) -> None:
        with self._lock:
            self._counts[outcome] += 1

    def counts(self) -> dict[str, int]:
        with self._lock:
            return dict(self._counts)
