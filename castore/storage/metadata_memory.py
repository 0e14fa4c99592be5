"""An in-process metadata store: dicts, for tests and the conformance suite."""

from __future__ import annotations

import contextlib
import itertools
import threading
from typing import Iterable, Iterator, Mapping, Sequence

from castore.storage.metadata import PAGE, MetadataStore, Table


class MemoryMetadataStore(MetadataStore):
    def __init__(self) -> None:
        self._tables: dict[str, dict[bytes, bytes]] = {}
        self._counters: dict[str, itertools.count] = {}
        self._lock = threading.Lock()
        self._held: set[str] = set()

    def get(self, table: Table, key: bytes) -> bytes | None:
        return self._tables.get(table.name, {}).get(key)

    def get_many(self, table: Table, keys: Sequence[bytes]) -> list[bytes | None]:
        with self._lock:
            records = self._tables.get(table.name, {})
            return [records.get(k) for k in keys]

    def scan(self, table: Table, after: bytes = b"", limit: int = PAGE) -> list[tuple[bytes, bytes]]:
        with self._lock:
            records = self._tables.get(table.name, {})
            keys = sorted(k for k in records if k > after)[:limit]
            return [(k, records[k]) for k in keys]

    def commit(self, puts: Mapping[Table, Mapping[bytes, bytes]],
               deletes: Mapping[Table, Iterable[bytes]] = {}) -> None:
        puts = {table: dict(items) for table, items in puts.items()}  # before anything changes
        deletes = {table: list(keys) for table, keys in deletes.items()}
        for items in puts.values():
            if any(not isinstance(k, bytes) or not k for k in items):
                raise ValueError("metadata keys are non-empty bytes")
        with self._lock:
            for table, keys in deletes.items():
                records = self._tables.get(table.name, {})
                for key in keys:
                    records.pop(key, None)
            for table, items in puts.items():
                records = self._tables.setdefault(table.name, {})
                if table.insert_only:
                    for key, value in items.items():
                        records.setdefault(key, bytes(value))
                else:
                    records.update((k, bytes(v)) for k, v in items.items())

    def next_id(self, counter: str) -> int:
        with self._lock:
            return next(self._counters.setdefault(counter, itertools.count()))

    @contextlib.contextmanager
    def try_lock(self, name: str) -> Iterator[bool]:
        with self._lock:
            got = name not in self._held
            self._held.add(name)
        try:
            yield got
        finally:
            if got:
                with self._lock:
                    self._held.discard(name)

    def size_bytes(self) -> int:
        with self._lock:
            return sum(len(k) + len(v) for records in self._tables.values() for k, v in records.items())

    def close(self) -> None:
        pass
