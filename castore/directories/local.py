"""The local directory backend: canonical encodings stored as chunks of the engine, named as
directories in a table of their own.

A directory's digest is the BLAKE3 of its encoding, exactly as a chunk's, so directories
share the chunk path: compressed with their neighbours in frames of their own (a tree's
many small directories compress well together, keep the LMDB index small, and are fetched
without decompressing file contents), verified on every read, made durable by the same
commit. They do not share the chunk namespace: only a digest Put as a directory (validated,
its closure complete) has a row in DIRECTORY_ROWS, and get() answers for no other, so bytes
stored as a blob that happen to be a canonical directory encoding never pass for one.

Stores written before the rows existed are marked once when first opened by this version:
every stored chunk that decodes as a canonical directory gets its row (what those versions
read as directories), then META records that it was done. Such a store on a read-only file
system cannot be marked: it is read as those versions read it (a warning says so).
"""

from __future__ import annotations

from typing import Callable, Iterable, Iterator, TypeVar

from castore import wire
from castore.digest import B3Digest
from castore.directories.service import DirectoryService
from castore.errors import CorruptionError, NotFoundError, ValidationError
from castore.local.engine import CHUNKS, META, EngineUser, LocalEngine
from castore.local.frames import DIRECTORIES
from castore.nodes import Directory
from castore.storage.metadata import Table
from castore.wire import NotCanonical

T = TypeVar("T")

DIRECTORY_ROWS = Table("directories", insert_only=True)
"""Digest -> b"": the chunks that were put as directories."""
ROWS_WRITTEN = b"directory-rows"
"""META key: every directory chunk of the store has its row (see _mark_existing)."""
MARK_BATCH = 1_000
"""Chunks read per engine call while marking an older store."""


class LocalDirectoryService(EngineUser, DirectoryService):
    """Takes over one reference to the engine (see registry.py); close() releases it."""

    def __init__(self, engine: LocalEngine) -> None:
        super().__init__(engine)
        self._rows = _mark_existing(engine)
        """False for an unmarked read-only store: every canonical chunk reads as a directory."""

    def get(self, digest: B3Digest) -> Directory | None:
        """One directory; None when no directory was put with this digest."""
        return self.get_many([digest])[0]

    def get_many(self, digests: list[B3Digest]) -> list[Directory | None]:
        """One lookup of the rows, one engine.read_chunks for the directories among them."""
        digests = [B3Digest(d) for d in digests]
        if not self._rows:
            return [_legacy(d, data) for d, data in zip(digests, self.engine.read_chunks(digests))]
        rows = self.engine.records.get_many(DIRECTORY_ROWS, digests)
        known = [d for d, row in zip(digests, rows) if row is not None]
        found = {d: _stored(d, data) for d, data in zip(known, self.engine.read_chunks(known))}
        return [found.get(d) for d in digests]

    def get_recursive(self, digest: B3Digest) -> Iterator[Directory]:
        """Breadth-first as the interface's, each directory decoded as stored (see _stored):
        decoding was most of laying out a NAR."""
        if not self._rows:
            return super().get_recursive(digest)
        return self._closure(digest, _stored, _directory_children)

    def get_recursive_encoded(self, digest: B3Digest) -> Iterator[bytes]:
        """As get_recursive, without building directories: only their children's digests are read
        (decoding was 70% of serving a closure)."""
        if not self._rows:
            return super().get_recursive_encoded(digest)
        return self._closure(digest, _as_stored, _encoded_children)

    def _closure(self, digest: B3Digest, read: Callable[[B3Digest, bytes], T],
                 children: Callable[[T], Iterable[B3Digest]]) -> Iterator[T]:
        """`read(digest, stored bytes)` of each directory of the closure, breadth-first, with
        `children` of what it read: one lookup of the rows and one engine.read_chunks per level,
        every chunk verified against its digest as it is read. Nothing for an unknown root."""
        level = [B3Digest(digest)]
        seen = set(level)
        while level:
            rows = self.engine.records.get_many(DIRECTORY_ROWS, level)
            if rows[0] is None and len(seen) == 1:
                return  # the root's level, and no row for it: an unknown root
            next_level = []
            for child, row, data in zip(level, rows, self.engine.read_chunks(level)):
                if row is None or data is None:
                    raise NotFoundError(f"directory {child} referenced but missing")
                item = read(child, bytes(data))
                yield item
                for grandchild in children(item):
                    if grandchild not in seen:
                        seen.add(grandchild)
                        next_level.append(grandchild)
            level = next_level

    def put(self, directories: Iterable[Directory]) -> B3Digest:
        """Validate the whole closure, then store it and its rows in one commit (or this thread's open batch)."""
        from castore.directories.closure import ClosureValidator  # a writer's: not loaded by a read

        validator = ClosureValidator()
        for directory in directories:
            validator.add(directory)
        root, order = validator.finish()
        for directory in order:
            self.engine.add_chunk(directory.digest, directory.encoded, DIRECTORIES)
        self.engine.records.stage(DIRECTORY_ROWS, [(bytes(d.digest), b"") for d in order])
        self.engine.records.settle()
        return root


def _stored(digest: B3Digest, data: bytes | memoryview | None) -> Directory | None:
    """A chunk that has its row (so it was validated as a directory when put, or when an older
    store was marked) as read_chunks gives it (verified against `digest`): decoded without checking
    it again (see Directory.decode_stored). None when the chunk is gone."""
    return None if data is None else Directory.decode_stored(bytes(data), digest)


def _directory_children(directory: Directory) -> list[B3Digest]:
    return [child.digest for child in directory.directories]


def _as_stored(digest: B3Digest, data: bytes) -> bytes:
    return data


def _encoded_children(data: bytes) -> list[B3Digest]:
    """The digests of the directories a stored directory's bytes name, read as stored (see
    castore.wire.stored_directory: they were validated when put, and are verified as read)."""
    return wire.stored_directory(data, _digest_of, _nothing, _nothing)[0]


def _digest_of(name: bytes, digest: bytes, size: int) -> B3Digest:
    return B3Digest(digest)


def _nothing(*fields: object) -> None:
    return None


def _decoded(digest: B3Digest, data: bytes | memoryview | None) -> Directory | None:
    """The directory a chunk read for `digest` holds (verified against it); None when the chunk is gone."""
    if data is None:
        return None
    try:
        return Directory.decode_canonical(bytes(data), digest)
    except (NotCanonical, ValidationError) as e:
        raise CorruptionError(f"directory {digest} is stored but is not a canonical directory: {e}") from None


def _legacy(digest: B3Digest, data: bytes | memoryview | None) -> Directory | None:
    """A chunk as versions before DIRECTORY_ROWS read it: a directory if it decodes as one."""
    try:
        return _decoded(digest, data)
    except CorruptionError:
        return None


def _mark_existing(engine: LocalEngine) -> bool:
    """Give every directory chunk of a store written before DIRECTORY_ROWS its row, once; False
    when the store needs it but is read-only."""
    metadata = engine.metadata
    if metadata.get(META, ROWS_WRITTEN) is not None:
        return True
    if metadata.read_only:
        import logging  # only this warning logs: a dump need not load logging

        logging.getLogger(__name__).warning("this store predates directory rows and is read-only: any chunk that "
                                            "decodes as a directory reads as one until it is opened writable once")
        return False
    engine.commit()
    rows: dict[bytes, bytes] = {}
    batch: list[bytes] = []
    for digest, _ in metadata.items(CHUNKS):
        batch.append(digest)
        if len(batch) == MARK_BATCH:
            rows.update(_directories_among(engine, batch))
            batch = []
    rows.update(_directories_among(engine, batch))
    metadata.commit({DIRECTORY_ROWS: rows, META: {ROWS_WRITTEN: b"1"}})
    return True


def _directories_among(engine: LocalEngine, digests: list[bytes]) -> dict[bytes, bytes]:
    """Rows for the chunks among `digests` whose bytes are a canonical directory encoding."""
    rows = {}
    for digest, data in zip(digests, engine.read_chunks(digests)):
        try:
            if data is not None:
                Directory.decode_canonical(bytes(data), B3Digest(digest))
                rows[digest] = b""
        except (NotCanonical, ValidationError):
            continue
    return rows
