"""The local directory backend: canonical encodings stored as chunks of the engine.

A directory's digest is the BLAKE3 of its encoding, exactly as a chunk's, so directories
share the chunk path: compressed with their neighbours in frames of their own (a tree's
many small directories compress well together, keep the LMDB index small, and are fetched
without decompressing file contents), verified on every read, made durable by the same
commit. Content addressing makes this unambiguous: a stored chunk whose bytes decode to a
canonical directory with that digest is that directory.
"""

from __future__ import annotations

from typing import Iterable

from castore.digest import B3Digest
from castore.directories.closure import ClosureValidator
from castore.directories.service import DirectoryService
from castore.errors import ValidationError
from castore.local.engine import EngineUser
from castore.local.frames import DIRECTORIES
from castore.nodes import Directory
from castore.wire import NotCanonical


class LocalDirectoryService(EngineUser, DirectoryService):
    """Takes over one reference to the engine (see registry.py); close() releases it."""

    def get(self, digest: B3Digest) -> Directory | None:
        """One directory; None when unknown or when the digest names a blob that is not one."""
        digest = B3Digest(digest)
        return _decoded(digest, self.engine.read_chunk(digest))

    def get_many(self, digests: list[B3Digest]) -> list[Directory | None]:
        """One engine.read_chunks for all of them: one metadata transaction, frames read ahead."""
        digests = [B3Digest(d) for d in digests]
        return [_decoded(d, data) for d, data in zip(digests, self.engine.read_chunks(digests))]

    def put(self, directories: Iterable[Directory]) -> B3Digest:
        """Validate the whole closure, then store it in one commit (or this thread's open batch)."""
        validator = ClosureValidator()
        for directory in directories:
            validator.add(directory)
        root, order = validator.finish()
        for directory in order:
            self.engine.add_chunk(directory.digest, directory.encoded, DIRECTORIES)
        self.engine.records.settle()
        return root


def _decoded(digest: B3Digest, data: bytes | memoryview | None) -> Directory | None:
    """The directory a chunk read for `digest` holds (verified against it); None when there is
    no chunk or it is a blob that is not a canonical directory."""
    if data is None:
        return None
    try:
        return Directory.decode_canonical(bytes(data), digest)
    except (NotCanonical, ValidationError):
        return None
