"""One shared, reference-counted instance per key and process.

LMDB allows one Environment per file per process, and the engine keeps one set of staged
records and batches per store; both hand out a shared instance and close it when its last
user does. The key includes the process id: an instance inherited through fork() is never
reused.
"""

from __future__ import annotations

import os
import threading
from typing import Callable, Generic, Hashable, TypeVar

T = TypeVar("T")


class Shared(Generic[T]):
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._entries: dict[tuple[int, Hashable], list] = {}  # key -> [instance, references]

    def acquire(self, key: Hashable, create: Callable[[], T]) -> T:
        """The instance for `key`, created on first use; each call is one reference."""
        with self._lock:
            entry = self._entries.get((os.getpid(), key))
            if entry is None:
                entry = self._entries[(os.getpid(), key)] = [create(), 0]
            entry[1] += 1
            return entry[0]

    def release(self, key: Hashable) -> bool:
        """Drop one reference; True when it was the last (the caller then closes the instance)."""
        with self._lock:
            entry = self._entries.get((os.getpid(), key))
            if entry is None:
                return True
            entry[1] -= 1
            if entry[1] > 0:
                return False
            del self._entries[(os.getpid(), key)]
            return True
