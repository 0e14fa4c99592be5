"""Records in the embedded store's metadata, beside its path infos: one table per namespace."""

from __future__ import annotations

from castore.local.engine import EngineUser
from castore.storage.metadata import Table
from store.records.service import NAMESPACES, RecordService, check

TABLES = {namespace: Table(f"records-{namespace}") for namespace in NAMESPACES}


class LocalRecordService(EngineUser, RecordService):
    def get(self, namespace: str, key: str) -> bytes | None:
        return self.engine.records.get(TABLES[namespace], check(namespace, key))

    def put(self, namespace: str, key: str, value: bytes) -> None:
        self.engine.records.put(TABLES[namespace], [(check(namespace, key), value)])
