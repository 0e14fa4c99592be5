"""Garbage collection's mark in the embedded engine: what a set of castore nodes keeps.

A kept node keeps its directories (chunks themselves), the blobs of its files, their chunks,
and (found by the sweep, which reads chunk records) the bases of chunks stored as deltas.

Memory: a live chunk or chunked blob is an 8-byte prefix of its digest in a set of ints,
about 70 bytes each (a prefix two digests share keeps a dead chunk, never loses a live one);
a directory, whose entries are followed once, is kept whole, about 100 bytes. A GC's mark
of 3 million chunks and 200,000 directories fits in about 230 MB.
"""

from __future__ import annotations

from typing import Iterable

from castore.blobs.local import BLOBS, decode_chunk_list
from castore.digest import B3Digest
from castore.errors import CorruptionError
from castore.local.engine import LocalEngine
from castore.nodes import Directory, DirectoryNode, FileNode, Node

BATCH = 1_000
"""Directories read (and blob records looked up) per engine call."""


def _prefix(digest: bytes) -> int:
    return int.from_bytes(digest[:8], "big")


class LiveSet:
    """Chunks (and chunked blobs' records) that are kept, by digest prefix."""

    def __init__(self) -> None:
        self._live: set[int] = set()
        self._directories: set[bytes] = set()

    def add(self, digest: bytes) -> bool:
        """Keep a chunk or blob record; whether it was not kept before."""
        key = _prefix(digest)
        if key in self._live:
            return False
        self._live.add(key)
        return True

    def __contains__(self, digest: bytes) -> bool:
        return _prefix(digest) in self._live

    def __len__(self) -> int:
        return len(self._live)

    def first_visit(self, directory: bytes) -> bool:
        """Whether a directory is seen for the first time (then it is kept)."""
        directory = bytes(directory)
        if directory in self._directories:
            return False
        self._directories.add(directory)
        self.add(directory)
        return True


class Marker:
    """Marks what nodes keep, reading directories and chunk lists through the engine (so a
    record GC swept earlier but named again is found through its tombstone)."""

    def __init__(self, engine: LocalEngine, live: LiveSet) -> None:
        self._engine = engine
        self.live = live

    def nodes(self, nodes: Iterable[Node]) -> None:
        directories, files = [], []
        for node in nodes:
            if isinstance(node, DirectoryNode):
                directories.append(node.digest)
            elif isinstance(node, FileNode):
                files.append(node.digest)
        self.blobs(files)
        self.directories(directories)

    def directories(self, digests: Iterable[bytes]) -> None:
        """Every directory below these, breadth first, BATCH at a time. A kept directory that
        is missing stops the GC: what it kept cannot be known."""
        queue = [d for d in digests if self.live.first_visit(d)]
        while queue:
            batch, queue = queue[-BATCH:], queue[:-BATCH]
            files: list[bytes] = []
            for digest, data in zip(batch, self._engine.read_chunks(batch)):
                if data is None:
                    raise CorruptionError(f"directory {B3Digest(digest)} is kept but missing: "
                                          "garbage collection stops (run `cairn verify --all`)")
                directory = Directory.decode_canonical(bytes(data), B3Digest(digest))
                queue.extend(d.digest for d in directory.directories if self.live.first_visit(d.digest))
                files.extend(f.digest for f in directory.files)
            self.blobs(files)

    def blobs(self, digests: list[bytes]) -> None:
        """Blobs: a chunked one keeps its record and its chunks, another is one chunk."""
        for start in range(0, len(digests), BATCH):
            batch = digests[start:start + BATCH]
            for digest, record in zip(batch, self._engine.records.get_many(BLOBS, batch)):
                self.live.add(digest)
                if record is not None:
                    for chunk in decode_chunk_list(digest, record):
                        self.live.add(chunk.digest)
