"""Helpers of the GC tests: run `cairn`, age a store, measure it."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from castore.local.packs import PACKS, PackRow
from store.gc import retention
from store.gc.engine import engine_of
from store.url import open_store

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
