"""An in-process pack store, for tests and the conformance suite."""

from __future__ import annotations

import threading
from typing import Iterator, Sequence

from castore.errors import CorruptionError
from castore.storage.packs import PackStore, check_name


class MemoryPackStore(PackStore):
    def __init__(self) -> None:
        self._packs: dict[str, bytes] = {}
        self._lock = threading.Lock()

    def put(self, name: str, data: bytes | memoryview) -> None:
        check_name(name)
        with self._lock:
            self._packs.setdefault(name, bytes(data))

    def read(self, name: str, ranges: Sequence[tuple[int, int]]) -> list[bytes]:
        pack = self._packs.get(check_name(name))
        if pack is None:
            raise CorruptionError(f"pack {name} is referenced but missing")
        out = []
        for offset, length in ranges:
            piece = pack[offset:offset + length]
            if len(piece) != length:
                raise CorruptionError(f"pack {name} is truncated: wanted {length} bytes at {offset}, "
                                      f"got {len(piece)}")
            out.append(piece)
        return out

    def list(self) -> Iterator[tuple[str, int]]:
        with self._lock:
            return iter([(name, len(data)) for name, data in self._packs.items()])

    def delete(self, name: str) -> None:
        with self._lock:
            self._packs.pop(check_name(name), None)

    def close(self) -> None:
        pass
