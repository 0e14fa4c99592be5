"""Helpers of the GC tests: run `cairn`, age a store, measure it."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from castore.blobs.local import LocalBlobService
from castore.directories.local import LocalDirectoryService
from castore.local.engine import LocalEngine
from castore.local.packs import PACKS, PackRow
from castore.storage.metadata import MetadataStore
from castore.storage.packs_fs import FsPackStore
from castore.url import CAStore
from store.gc import retention
from store.gc.engine import engine_of
from store.pathinfo.local import LocalPathInfoService
from store.url import Store, open_store

ROOT = Path(__file__).resolve().parent.parent.parent
CAIRN = str(Path(sys.executable).parent / "cairn")


def cairn(*args: str, check: bool = True) -> subprocess.CompletedProcess:
    done = subprocess.run([CAIRN, *args], capture_output=True, cwd=ROOT)
    if check and done.returncode:
        raise AssertionError(f"cairn {' '.join(args)} failed: {done.stderr.decode(errors='replace')}")
    return done


def age(url: str, seconds: int) -> None:
    """Make everything in the store `seconds` older: its packs and its paths' added times."""
    with open_store(url) as store:
        engine = engine_of(store)
        engine.commit()
        rows = {k: PackRow.decode(v) for k, v in engine.metadata.items(PACKS)}
        added = {k: int.from_bytes(v, "big") for k, v in engine.metadata.items(retention.ADDED)}
        engine.metadata.commit(
            {PACKS: {k: r._replace(created=max(0, r.created - seconds)).encode() for k, r in rows.items()},
             retention.ADDED: {k: retention.stamp(max(0, t - seconds)) for k, t in added.items()}},
            {PACKS: list(rows)})


def disk_bytes(directory: Path) -> int:
    return sum(p.stat().st_size for p in directory.rglob("*") if p.is_file())


def engine_store(metadata: MetadataStore, packs: str) -> Store:
    """A Store over the embedded engine on any MetadataStore (PostgreSQL here), packs in files:
    what the scale-out store composes, put together by hand."""
    users = [3]

    def release() -> bool:
        users[0] -= 1
        return users[0] == 0

    engine = LocalEngine(metadata, FsPackStore(packs), release=release)
    castore = CAStore(LocalBlobService(engine), LocalDirectoryService(engine))
    return Store(castore, LocalPathInfoService(engine, castore))
