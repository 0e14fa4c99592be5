"""Garbage collection's mark in the embedded engine: what a set of castore nodes keeps.

A kept node keeps its directories (chunks themselves), the blobs of its files, their chunks,
and (found by the sweep, which reads chunk records) the bases of chunks stored as deltas.

Memory: a live chunk or chunked blob is the first 8 bytes of its digest in an open-addressing
table of u64s at most half full: 16-32 bytes each (a Python set of ints takes ~100). A prefix
two digests share keeps a dead chunk, never loses a live one. A directory, whose entries are
followed once, is kept whole in a set, ~100 bytes. So 10 million live chunks and 500,000
directories mark in about 400 MB at worst and 210 MB at best; 3 million chunks in under 150 MB.
"""

from __future__ import annotations

from array import array
from typing import Iterable

from castore.blobs.local import BLOBS, decode_chunk_list
from castore.digest import B3Digest
from castore.errors import CorruptionError
from castore.local.engine import LocalEngine
from castore.nodes import Directory, DirectoryNode, FileNode, Node

BATCH = 1_000
"""Directories read (and blob records looked up) per engine call."""


class PrefixTable:
    """A set of non-zero u64s: linear probing in an array('Q'), grown to stay at most half full.
    Digest prefixes are uniform, so their low bits index it as they are."""

    def __init__(self, capacity: int = 1 << 16) -> None:
        self._slots = array("Q", bytes(8 * capacity))
        self._mask = capacity - 1
        self._count = 0

    def add(self, key: int) -> bool:
        """Insert; whether it was absent."""
        if 2 * (self._count + 1) > len(self._slots):
            self._grow()
        slots, mask = self._slots, self._mask
        i = key & mask
        while True:
            found = slots[i]
            if found == key:
                return False
            if not found:
                slots[i] = key
                self._count += 1
                return True
            i = (i + 1) & mask

    def __contains__(self, key: int) -> bool:
        slots, mask = self._slots, self._mask
        i = key & mask
        while True:
            found = slots[i]
            if found == key:
                return True
            if not found:
                return False
            i = (i + 1) & mask

    def __len__(self) -> int:
        return self._count

    def _grow(self) -> None:
        old = self._slots
        self._slots = array("Q", bytes(16 * len(old)))
        self._mask = len(self._slots) - 1
        self._count = 0
        for key in old:
            if key:
                self.add(key)


def _prefix(digest: bytes) -> int:
    return int.from_bytes(digest[:8], "big") or 1  # 0 marks an empty slot


class LiveSet:
    """Chunks (and chunked blobs' records) that are kept, by digest prefix."""

    def __init__(self) -> None:
        self._live = PrefixTable()
        self._directories: set[bytes] = set()

    def add(self, digest: bytes) -> bool:
        """Keep a chunk or blob record; whether it was not kept before."""
        return self._live.add(_prefix(digest))

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
        """Every directory below these, BATCH at a time (the newest found first). A kept directory that
        is missing stops the GC: what it kept cannot be known."""
        queue = [d for d in digests if self.live.first_visit(d)]
        while queue:
            batch = queue[-BATCH:]
            del queue[-BATCH:]  # in place: slicing the rest off would copy the whole queue each time
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
