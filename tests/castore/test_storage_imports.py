"""Only the LMDB metadata store (and its compaction) may import lmdb: everything else goes
through the MetadataStore interface, so a second backend needs no change above it."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
ALLOWED = {"castore/storage/metadata_lmdb.py", "castore/storage/lmdb_compaction.py"}
IMPORT = re.compile(r"^\s*(import\s+lmdb\b|from\s+lmdb\b)", re.MULTILINE)


def test_no_module_outside_the_lmdb_backend_imports_lmdb() -> None:
    sources = [p for top in ("castore", "store", "nar_bridge", "fuse", "bench", "tests")
               for p in (ROOT / top).rglob("*.py")]
    assert len(sources) > 50
    importing = {str(p.relative_to(ROOT)) for p in sources if IMPORT.search(p.read_text())}
    assert importing == ALLOWED
