"""Filesystem tree -> castore: one walk, no symlink following, files streamed as met.

The walk runs in the calling thread inside one batch, so the store syncs once; the
local backend compresses in its own worker threads (zstd and BLAKE3 release the GIL),
which keeps both cores busy; to a remote one, small files go many at a time (see
castore.uploads). Directories are put leaves-first in one closure at the end (to a Cairn daemon,
in the stream of the small files, so one commit covers the tree).
"""

from __future__ import annotations

import os
import stat
import time
from dataclasses import dataclass
from typing import Callable, Iterator

from castore import limits
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


def upload_file(uploads: Uploads, path: bytes | str, progress: Callable[[int], None] | None = None) -> B3Digest:
    """Stream one file into the blob service in bounded pieces."""
    with open(path, "rb", buffering=0) as f, uploads.open_write() as writer:
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
            uploads.finish(directories, self.store.directories)  # every blob stored before (or with) them
        self.stats.stored_after = self.store.blobs.stored_bytes()
        self.stats.seconds = time.monotonic() - start
        return node

    def _import(self, name: bytes, path: bytes, st: os.stat_result, directories: list[Directory],
                uploads: Uploads) -> Node:
        """The node for `path`; directories below it are appended leaves first. The walk keeps
        its open directories on a stack, so depth costs no recursion; castore.limits caps the
        depth and each directory's entries."""
        entry_limit, depth_limit = limits.max_entries(), limits.max_depth()
        open_dirs: list[tuple[bytes, Iterator[os.DirEntry[bytes]], list[Node]]] = []  # name, entries left, nodes
        while True:
            node: Node | None = None
            if stat.S_ISDIR(st.st_mode):
                limits.check_depth(len(open_dirs), depth_limit)
                self.stats.directories += 1
                open_dirs.append((name, iter(_entries(path, entry_limit)), []))
            else:
                node = self._leaf(name, path, st, uploads)
            while open_dirs:
                if node is not None:
                    open_dirs[-1][2].append(node)
                entry = next(open_dirs[-1][1], None)
                if entry is not None:
                    name, path, st = entry.name, entry.path, entry.stat(follow_symlinks=False)
                    break
                dir_name, _, nodes = open_dirs.pop()
                directory = Directory.of(nodes)
                directories.append(directory)
                node = directory.as_node(dir_name)
            else:
                assert node is not None
                return node

    def _leaf(self, name: bytes, path: bytes, st: os.stat_result, uploads: Uploads) -> Node:
        """A symlink's or a regular file's node (its contents stored)."""
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
                digest = upload_file(uploads, path, self._advance)
            return FileNode(name, digest, self.stats.bytes - before, bool(mode & stat.S_IXUSR))
        raise ValidationError(f"{os.fsdecode(path)}: cannot import {describe_kind(mode)} (only files, "
                              "directories and symlinks)")

    def _advance(self, n: int) -> None:
        self.stats.bytes += n
        if self.progress:
            self.progress(self.stats.bytes, 0)


def _entries(path: bytes, limit: int) -> list[os.DirEntry[bytes]]:
    """A directory's entries sorted by name; ValidationError past `limit` of them."""
    entries = []
    with os.scandir(path) as it:
        for entry in it:
            entries.append(entry)
            if len(entries) > limit:
                limits.check_entries(len(entries), limit)
    return sorted(entries, key=lambda e: e.name)


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

