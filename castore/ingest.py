"""Filesystem tree -> castore: one walk, no symlink following, files streamed as met.

The walk runs in the calling thread inside one batch, so the store syncs once; the
local backend compresses in its own worker threads (zstd and BLAKE3 release the GIL),
which keeps both cores busy; to a remote one, small files go many at a time (see
castore.uploads). Directories are put leaves-first in one closure at the end.
"""

from __future__ import annotations

import os
import stat
import time
from dataclasses import dataclass
from typing import Callable

from castore.blobs.service import BlobService
from castore.digest import B3Digest
from castore.errors import ValidationError
from castore.nodes import Directory, FileNode, Node, SymlinkNode
from castore.uploads import SMALL, Uploads
from castore.url import CAStore

READ_SIZE = 1 << 20
Progress = Callable[[int, int], None]  # (bytes done, total if known else 0)


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

    def __init__(self, store: CAStore, *, progress: Progress | None = None) -> None:
        self.store = store
        self.progress = progress
        self.stats = ImportStats()

    def run(self, path: str | os.PathLike) -> Node:
        start = time.monotonic()
        self.stats.stored_before = self.store.blobs.stored_bytes()
        root = os.fsencode(path)
        directories: list[Directory] = []
        with self.store.batch(), Uploads(self.store.blobs) as uploads:
            node = self._import(b"", root, os.lstat(root), directories, uploads)
            uploads.wait()  # every blob stored before a directory names it
            if directories:
                self.store.directories.put(directories)
        self.stats.stored_after = self.store.blobs.stored_bytes()
        self.stats.seconds = time.monotonic() - start
        return node

    def _import(self, name: bytes, path: bytes, st: os.stat_result, directories: list[Directory],
                uploads: Uploads) -> Node:
        """The node for `path`; directories below it are appended leaves first."""
        mode = st.st_mode
        if stat.S_ISLNK(mode):
            self.stats.symlinks += 1
            return SymlinkNode(name, os.readlink(path))
        if stat.S_ISREG(mode):
            self.stats.files += 1
            before = self.stats.bytes
            if st.st_size <= SMALL:
                with open(path, "rb") as f:
                    data = f.read(SMALL + 1)
                if len(data) > SMALL:  # never hold more than SMALL of it in memory
                    raise ValidationError(f"{os.fsdecode(path)} grew while it was imported")
                self._advance(len(data))
                digest = uploads.put(data)
            else:
                digest = upload_file(self.store.blobs, path, self._advance)
            return FileNode(name, digest, self.stats.bytes - before, bool(mode & stat.S_IXUSR))
        if stat.S_ISDIR(mode):
            self.stats.directories += 1
            with os.scandir(path) as it:
                entries = sorted(it, key=lambda e: e.name)
            directory = Directory.of(self._import(os.fsencode(e.name), os.fsencode(e.path),
                                                  e.stat(follow_symlinks=False), directories, uploads)
                                     for e in entries)
            directories.append(directory)
            return directory.as_node(name)
        raise ValidationError(f"{os.fsdecode(path)}: cannot import {describe_kind(mode)} (only files, "
                              "directories and symlinks)")

    def _advance(self, n: int) -> None:
        self.stats.bytes += n
        if self.progress:
            self.progress(self.stats.bytes, 0)


def describe_kind(mode: int) -> str:
    """'a socket', 'a FIFO', 'a device': for errors about what cannot be imported."""
    if stat.S_ISSOCK(mode):
        return "a socket"
    if stat.S_ISFIFO(mode):
        return "a FIFO"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "a device"
    return "this file type"


def import_path(store: CAStore, path: str | os.PathLike, *,
                progress: Progress | None = None) -> tuple[Node, ImportStats]:
    """Import a file, symlink or directory tree; returns the root node (empty name)."""
    importer = Importer(store, progress=progress)
    node = importer.run(path)
    return node, importer.stats

