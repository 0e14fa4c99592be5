"""In-process directory backend for unit tests and `memory://`."""

from __future__ import annotations

import threading
from typing import Iterable

from castore.digest import B3Digest
from castore.directories.closure import ClosureValidator
from castore.directories.service import DirectoryService
from castore.nodes import Directory


class MemoryDirectoryService(DirectoryService):
    def __init__(self) -> None:
        self._dirs: dict[bytes, Directory] = {}
        self._lock = threading.Lock()

    def get(self, digest: B3Digest) -> Directory | None:
        return self._dirs.get(bytes(digest))

    def put(self, directories: Iterable[Directory]) -> B3Digest:
        validator = ClosureValidator()
        for d in directories:
            validator.add(d)
        root, order = validator.finish()
        with self._lock:
            for d in order:
                self._dirs.setdefault(bytes(d.digest), d)
        return root
