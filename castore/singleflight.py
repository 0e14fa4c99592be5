"""Single flight: concurrent calls for one key run once, and every caller gets that result.

Concurrent misses for one path (many nix clients substituting the same closure, a mount's
parallel lookups) must fetch it once from far away, not once per caller.
"""

from __future__ import annotations

import threading
from concurrent.futures import Future
from typing import Callable, Generic, Hashable, TypeVar

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")


class SingleFlight(Generic[K, V]):
    """One call per key at a time: whoever asks while it runs waits for its result (or its error)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._calls: dict[K, Future[V]] = {}

    def run(self, key: K, call: Callable[[], V]) -> V:
        with self._lock:
            future = self._calls.get(key)
            leader = future is None
            if leader:
                future = self._calls[key] = Future()
        if leader:
            try:
                future.set_result(call())
            except BaseException as e:
                future.set_exception(e)
            finally:
                with self._lock:
                    del self._calls[key]
        return future.result()
