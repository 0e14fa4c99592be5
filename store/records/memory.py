"""In-process records for memory:// stores, which forget everything on exit anyway."""

from __future__ import annotations

import threading

from store.records.service import RecordService, check


class MemoryRecordService(RecordService):
    def __init__(self) -> None:
        self._values: dict[tuple[str, bytes], bytes] = {}
        self._lock = threading.Lock()

    def get(self, namespace: str, key: str) -> bytes | None:
        return self._values.get((namespace, check(namespace, key)))

    def put(self, namespace: str, key: str, value: bytes) -> None:
        with self._lock:
            self._values[(namespace, check(namespace, key))] = value
