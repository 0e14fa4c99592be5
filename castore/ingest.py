"""Filesystem tree -> castore: walk without following symlinks, upload files in parallel.

The walk collects the tree's shape first (cheap metadata), so progress knows the
total; file uploads then run on a small thread pool (BLAKE3 and zstd release the
GIL, so both cores work), and directories are put leaves-first in one closure.
"""

from __future__ import annotations

import os
import stat
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Callable

from castore.blobs.service import BlobService
from castore.digest import B3Digest
from castore.errors import ValidationError
from castore.nodes import Directory, FileNode, Node, SymlinkNode
from castore.url import CAStore

READ_SIZE = 1 << 20
Progress = Callable[[int, int], None]  # (bytes done, bytes known so far)


@dataclass
class ImportStats:
    files: int = 0
    directories: int = 0
    symlinks: int = 0
    bytes: int = 0
    stored_before: int | None = None
    stored_after: int | None = None
    seconds: float = 0.0

    @property
    def new_stored_bytes(self) -> int | None:
        if self.stored_before is None or self.stored_after is None:
            return None
        return self.stored_after - self.stored_before


@dataclass
class _Dir:
    """A directory as walked: its files are futures until uploads finish."""

    entries: list[tuple[bytes, object]] = field(default_factory=list)


def upload_file(blobs: BlobService, path: bytes | str, progress: Callable[[int], None] | None = None) -> B3Digest:
    """Stream one file into the blob service in bounded pieces."""
    with open(path, "rb", buffering=0) as f, blobs.open_write() as writer:
        buf = bytearray(READ_SIZE)
        view = memoryview(buf)
        while n := f.readinto(buf):
            writer.write(view[:n])
            if progress:
                progress(n)
        return writer.close()


class Importer:
    """Imports one path (file, symlink or directory tree) and reports statistics."""

    def __init__(self, store: CAStore, *, workers: int | None = None,
                 progress: Progress | None = None) -> None:
        self.store = store
        self.workers = workers or min(4, os.cpu_count() or 2)
        self.progress = progress
        self.stats = ImportStats()
        self.total_bytes = 0
        self._lock = threading.Lock()

    def run(self, path: str | os.PathLike) -> Node:
        start = time.monotonic()
        self.stats.stored_before = self.store.blobs.stored_bytes()
        root = os.fsencode(path)
        with self.store.batch(), ThreadPoolExecutor(self.workers, "cairn-import") as pool:
            shape = self._walk(root, os.lstat(root), pool)
            node = self._finish(shape)
        self.stats.stored_after = self.store.blobs.stored_bytes()
        self.stats.seconds = time.monotonic() - start
        return node

    def _walk(self, path: bytes, st: os.stat_result, pool: ThreadPoolExecutor) -> object:
        """Return the path's shape: a node, a file future or a _Dir."""
        mode = st.st_mode
        if stat.S_ISLNK(mode):
            self.stats.symlinks += 1
            return SymlinkNode(b"", os.readlink(path))
        if stat.S_ISREG(mode):
            self.stats.files += 1
            self.total_bytes += st.st_size
            executable = bool(mode & stat.S_IXUSR)
            return (pool.submit(self._upload, path), st.st_size, executable)
        if stat.S_ISDIR(mode):
            self.stats.directories += 1
            shape = _Dir()
            with os.scandir(path) as it:
                entries = sorted(it, key=lambda e: e.name)
            for entry in entries:
                shape.entries.append((entry.name, self._walk(entry.path, entry.stat(follow_symlinks=False), pool)))
            return shape
        raise ValidationError(f"{os.fsdecode(path)}: cannot import {describe_kind(mode)} (only files, "
                              "directories and symlinks)")

    def _upload(self, path: bytes) -> tuple[B3Digest, int]:
        size = 0

        def moved(n: int) -> None:
            nonlocal size
            size += n

        digest = upload_file(self.store.blobs, path, moved)
        self._advance(size)
        return digest, size

    def _advance(self, n: int) -> None:
        with self._lock:
            self.stats.bytes += n
            done = self.stats.bytes
        if self.progress:
            self.progress(done, self.total_bytes)

    def _finish(self, shape: object) -> Node:
        """Resolve uploads and put all directories leaves-first in one closure."""
        directories: list[Directory] = []
        node = self._resolve(b"", shape, directories)
        if directories:
            self.store.directories.put(directories)
        return node

    def _resolve(self, name: bytes, shape: object, out: list[Directory]) -> Node:
        if isinstance(shape, SymlinkNode):
            return SymlinkNode(name, shape.target)
        if isinstance(shape, tuple):
            future, _, executable = shape
            digest, size = future.result()
            return FileNode(name, digest, size, executable)
        assert isinstance(shape, _Dir)
        directory = Directory.of(self._resolve(n, s, out) for n, s in shape.entries)
        out.append(directory)
        return directory.as_node(name)


def describe_kind(mode: int) -> str:
    """'a socket', 'a FIFO', 'a device': for errors about what cannot be imported."""
    if stat.S_ISSOCK(mode):
        return "a socket"
    if stat.S_ISFIFO(mode):
        return "a FIFO"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "a device"
    return "this file type"


def import_path(store: CAStore, path: str | os.PathLike, *, progress: Progress | None = None,
                workers: int | None = None) -> tuple[Node, ImportStats]:
    """Import a file, symlink or directory tree; returns the root node (empty name)."""
    importer = Importer(store, workers=workers, progress=progress)
    node = importer.run(path)
    return node, importer.stats

