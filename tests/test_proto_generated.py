"""The committed protobuf code is exactly what proto/generate.py makes from proto/."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_generated_code_is_fresh(tmp_path):
    out = subprocess.run([sys.executable, str(ROOT / "proto" / "generate.py"), str(tmp_path)],
                         capture_output=True, text=True, check=True)
    written = out.stdout.split()
    assert written, "generator wrote nothing"
    for rel in written:
        fresh = (tmp_path / rel).read_text()
        committed = ROOT / rel
        assert committed.exists(), f"{rel} is generated but not committed: run `make proto`"
        assert committed.read_text() == fresh, f"{rel} is stale: run `make proto`"
