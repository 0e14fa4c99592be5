"""Stores and file-system roots for the NAR ingest and render tests."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Iterable, Iterator

import pytest

from castore.digest import B3Digest
from castore.directories.memory import MemoryDirectoryService
from castore.nodes import Directory
from castore.url import CAStore, open_castore
from tests.conftest import make_zoo

BACKENDS = ["memory", "local"]
ROOT_KINDS = ["zoo", "file", "executable", "empty-file", "symlink", "empty-dir"]


def open_test_store(kind: str, tmp_path: Path) -> CAStore:
    """A fresh store of `kind`; skips the test when the local backend is not built."""
    if kind == "local":
        pytest.importorskip("castore.blobs.local")
        return open_castore(f"local://{tmp_path}/store")
    return open_castore("memory://")


@pytest.fixture(params=BACKENDS)
def castore(request, tmp_path: Path) -> Iterator[CAStore]:
    """Each test that asks for it runs once per backend."""
    with open_test_store(request.param, tmp_path) as store:
        yield store


def make_root(kind: str, tmp_path: Path) -> Path:
    """A root of each kind `nix-store --dump` accepts: the zoo tree, lone files, a symlink, an empty dir."""
    path = tmp_path / kind
    if kind == "zoo":
        return make_zoo(path, big=(3 << 20) + 3)
    if kind == "symlink":
        os.symlink("some/target", path)
    elif kind == "empty-dir":
        path.mkdir()
    else:
        path.write_bytes(b"" if kind == "empty-file" else b"#!/bin/sh\necho root\n")
        path.chmod(0o755 if kind == "executable" else 0o644)
    return path


class RecordingDirectories(MemoryDirectoryService):
    """A memory directory service that records what a caller asked of it."""

    def __init__(self) -> None:
        super().__init__()
        self.puts = 0
        self.recursive_gets = 0
        self.gets: list[B3Digest] = []  # including those a recursive get makes

    def get(self, digest: B3Digest) -> Directory | None:
        self.gets.append(digest)
        return super().get(digest)

    def get_recursive(self, digest: B3Digest) -> Iterator[Directory]:
        self.recursive_gets += 1
        return super().get_recursive(digest)

    def put(self, directories: Iterable[Directory]) -> B3Digest:
        self.puts += 1
        return super().put(directories)
