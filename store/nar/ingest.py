"""NAR -> castore: one streaming pass turns a NAR into blobs and a directory closure.

File contents flow from the NAR straight into blob writers in bounded pieces, so
memory stays bounded whatever the NAR's size. Directories are only collected while
parsing and put as one leaves-first closure after the reader has checked the whole
stream and the caller's `check` has passed: a malformed or refused NAR leaves no
directory behind (the blobs it already wrote are content-addressed orphans, harmless).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from castore.digest import B3Digest
from castore.nodes import Directory, FileNode, Node, SymlinkNode
from castore.uploads import SMALL, Uploads
from castore.url import CAStore
from store.nar import SupportsRead
from store.nar.events import DirectoryEnd, DirectoryStart, Entry, RegularFile, Symlink
from store.nar.reader import HashingReader, read_nar

PIECE_SIZE = 1 << 20  # file contents move from the NAR to a blob writer in pieces of at most this
SHARED_DIGESTS = 4096
"""Digests of recent files kept to be shared by later files with the same contents (empty files,
licences, `__init__.py`): one object instead of one each, 88 bytes apiece a million times over."""


@dataclass(frozen=True, slots=True)
class NarIngestResult:
    """The root node (empty name) and what Nix calls NarSize and NarHash."""

    node: Node
    nar_size: int
    nar_sha256: bytes


def ingest_nar(store: CAStore, source: SupportsRead,
               check: Callable[[int, bytes], None] | None = None) -> NarIngestResult:
    """Import the NAR read from `source`; raises NarError when it is malformed.

    `source` must hold exactly one NAR: trailing bytes are an error. `check(nar_size,
    nar_sha256)` runs once the whole NAR is read, before any directory is stored; what it
    raises aborts the import.
    """
    hashing = HashingReader(source)
    directories: list[Directory] = []  # leaves first: a directory is finished after its children
    open_dirs: list[tuple[bytes, list[Node]]] = []  # per open directory: its name and its children
    name = b""  # the name of the node the next event describes; the root's is empty
    root: Node | None = None
    shared: dict[B3Digest, B3Digest] = {}
    with store.batch(), Uploads(store.blobs) as uploads:
        for event in read_nar(hashing):
            if isinstance(event, Entry):
                name = event.name
                continue
            if isinstance(event, DirectoryStart):
                open_dirs.append((name, []))
                continue
            if isinstance(event, RegularFile):
                digest = _upload(uploads, event)
                if len(shared) >= SHARED_DIGESTS:
                    shared.clear()
                node: Node = FileNode(name, shared.setdefault(digest, digest), event.size, event.executable)
            elif isinstance(event, Symlink):
                node = SymlinkNode(name, event.target)
            else:
                assert isinstance(event, DirectoryEnd)
                dir_name, children = open_dirs.pop()
                directory = Directory.of(children)
                directories.append(directory)
                node = directory.as_node(dir_name)
            if open_dirs:
                open_dirs[-1][1].append(node)
            else:
                root = node
        assert root is not None  # read_nar ends only after a complete root node
        if check is not None:
            check(hashing.size, hashing.sha256)
        uploads.finish(directories, store.directories)  # every blob stored before a directory names it
    return NarIngestResult(root, hashing.size, hashing.sha256)


def _upload(uploads: Uploads, event: RegularFile) -> B3Digest:
    """One file's contents as a new blob: a small file whole through `uploads`, a larger one
    streamed (in the same stream when there is one; an error part-way aborts the writer)."""
    if event.size <= SMALL:
        return uploads.put(_read_whole(event))
    with uploads.open_write() as writer:
        while piece := event.contents.read(PIECE_SIZE):
            writer.write(piece)
        return writer.close()


def _read_whole(event: RegularFile) -> bytes:
    """A small file's contents (the NAR reader raises NarError if they end early)."""
    parts = []
    left = event.size
    while left and (piece := event.contents.read(min(left, PIECE_SIZE))):
        parts.append(piece)
        left -= len(piece)
    return b"".join(parts)
