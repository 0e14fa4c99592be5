"""Shared fixtures: test vectors and the zoo tree."""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Iterator

import pytest

# the real servers (PostgreSQL, SeaweedFS for S3; a cluster of replicas over them), started when a test asks
pytest_plugins = ["tests.services.postgres", "tests.services.seaweed", "tests.services.cluster"]

SHARED = Path(__file__).resolve().parent.parent.parent / "shared"
TESTDATA = Path(os.environ.get("CAIRN_TESTDATA", SHARED / "testdata"))


@pytest.fixture(scope="session")
def vectors() -> dict:
    return json.loads((TESTDATA / "vectors.json").read_text())


def make_zoo(root: Path, big: int = 20 << 20) -> Path:
    """A tree with every kind of entry import and export must keep exactly."""
    root.mkdir()
    (root / "empty-dir").mkdir()
    (root / "nested" / "deeper" / "deepest").mkdir(parents=True)
    (root / "nested" / "deeper" / "deepest" / "leaf.txt").write_text("leaf\n")
    (root / "nested" / "a").write_bytes(b"a" * 100)
    (root / "empty-file").write_bytes(b"")
    (root / "one-byte").write_bytes(b"x")
    (root / "script.sh").write_text("#!/bin/sh\necho hi\n")
    os.chmod(root / "script.sh", 0o755)
    (root / "ünïcödé ñame").write_text("unicode\n")
    (root / "odd name with spaces & 'quotes'").write_text("odd\n")
    (root / os.fsdecode(b"latin1-\xe9")).write_bytes(b"not utf-8 name")
    (root / "-leading-dash").write_text("dash\n")
    (root / ".hidden").write_text("hidden\n")
    (root / "big.bin").write_bytes(_pseudo_random(big))
    (root / "medium.bin").write_bytes(_pseudo_random(300_000, seed=7))
    os.symlink("/nix/store/absolute-target", root / "abs-link")
    os.symlink("does/not/exist", root / "dangling")
    os.symlink("nested/a", root / "rel-link")
    os.symlink("empty-dir", root / "dir-link")
    return root


def _pseudo_random(n: int, seed: int = 1) -> bytes:
    """Deterministic, incompressible-ish bytes, fast to make."""
    import hashlib

    out = bytearray()
    block = seed.to_bytes(8, "little")
    while len(out) < n:
        block = hashlib.sha512(block).digest()
        out += block * 64
    return bytes(out[:n])


@pytest.fixture
def short_dir() -> Iterator[Path]:
    """A directory with a short path: unix socket paths must fit in 108 bytes."""
    path = Path(tempfile.mkdtemp(prefix="cairn-", dir="/tmp"))
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture
def zoo(tmp_path: Path) -> Path:
    return make_zoo(tmp_path / "zoo")
