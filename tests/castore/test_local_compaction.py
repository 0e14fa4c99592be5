"""Index compaction: the last user of a store gives back LMDB's free pages, and loses nothing."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from castore.blobs.local import BLOBS
from castore.local.engine import LocalEngine
from castore.local.registry import open_engine
from castore.storage import lmdb_compaction as compaction


def fill(engine: LocalEngine, commits: int = 30, per_commit: int = 1000) -> list[bytes]:
    """Many commits of random keys: each rewrites most leaves, as a bulk import does."""
    keys = []
    for _ in range(commits):
        batch = [os.urandom(32) for _ in range(per_commit)]
        engine.records.put(BLOBS, [(k, k[:8]) for k in batch])
        keys += batch
    return keys


def index_bytes(store: Path) -> int:
    return (store / "meta" / "data.mdb").stat().st_size


def test_the_last_close_compacts_a_mostly_free_index_and_keeps_every_record(tmp_path: Path) -> None:
    store = tmp_path / "s"
    engine = open_engine(str(store))
    keys = fill(engine)
    assert compaction.free_share(engine.metadata.env) >= compaction.FREE_SHARE
    grown = index_bytes(store)
    engine.close()
    assert index_bytes(store) < grown * 0.7
    assert sorted(os.listdir(store / "meta")) == ["data.mdb", "lock.mdb", "users.lock"]
    engine = open_engine(str(store))
    assert all(engine.records.get(BLOBS, k) == k[:8] for k in keys)
    assert compaction.free_share(engine.metadata.env) < compaction.FREE_SHARE
    engine.close()


def test_no_compaction_while_another_process_has_the_store_open_nor_by_a_reader(tmp_path: Path) -> None:
    store = tmp_path / "s"
    open_engine(str(store)).close()
    holder = subprocess.Popen(
        [sys.executable, "-c", "import sys; from castore.local.registry import open_engine; "
         f"e = open_engine({str(store)!r}); print('open', flush=True); sys.stdin.read(); e.close()"],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, cwd=Path(__file__).parents[2])
    try:
        assert holder.stdout.readline().strip() == "open"
        engine = open_engine(str(store))
        keys = fill(engine)
        grown = index_bytes(store)
        engine.close()
        assert index_bytes(store) == grown
    finally:
        holder.communicate("")
    assert index_bytes(store) == grown  # the holder closed last, alone, but only read: no rewrite
    engine = open_engine(str(store))
    assert all(engine.records.get(BLOBS, k) == k[:8] for k in keys)
    engine.close()

