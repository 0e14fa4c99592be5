"""Records in the embedded store's metadata, beside its path infos: one table per namespace."""

from __future__ import annotations

from castore.local.engine import EngineUser, LocalEngine
from store.records.service import NAMESPACES, RecordService, check


def _table(namespace: str) -> str:
    return f"records-{namespace}"


class LocalRecordService(EngineUser, RecordService):
    def __init__(self, engine: LocalEngine) -> None:
        super().__init__(engine)
        for namespace in NAMESPACES:
            engine.db(_table(namespace))

    def get(self, namespace: str, key: str) -> bytes | None:
        return self.engine.get(_table(namespace), check(namespace, key))

    def put(self, namespace: str, key: str, value: bytes) -> None:
        self.engine.put(_table(namespace), [(check(namespace, key), value)])
