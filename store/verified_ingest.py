"""One verified ingest: a NAR file (any Nix compression) and its narinfo become a PathInfo only
when every hash and size the narinfo gives holds.

Archive, nar-bridge uploads and read-through all check here, so a lying FileHash, FileSize,
NarHash or NarSize is refused the same way everywhere. The NAR file streams through a
hashing tap (its bytes as they came), the decompressor and NAR ingest; nothing is held
whole. The checks run before ingest stores any directory, so a refused NAR leaves at most
content-addressed blobs (orphans, harmless). Nothing here puts the PathInfo: callers
decide (archive and read-through keep it, an upload waits for its narinfo).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from castore.errors import ValidationError
from castore.nodes import Node
from castore.url import CAStore
from store import nixbase32
from store.compression import decompressing
from store.nar import SupportsRead
from store.nar.ingest import ingest_nar
from store.narinfo import NarInfo, NarinfoExtras
from store.nixhash import HashAlgo, NixHash
from store.pathinfo.model import PathInfo

PIECE = 1 << 16


@dataclass(frozen=True, slots=True)
class NarFacts:
    """What was measured of a NAR file: NarSize and NarHash of the NAR, size and hash of the file."""

    nar_size: int
    nar_sha256: bytes
    file_hash: NixHash | None
    file_size: int | None  # None: not known


def check_narinfo(narinfo: NarInfo, facts: NarFacts) -> None:
    """Raise ValidationError naming the first of FileSize, FileHash, NarSize, NarHash that lies."""
    if narinfo.file_size is not None and facts.file_size is not None and narinfo.file_size != facts.file_size:
        raise ValidationError(f"FileSize {narinfo.file_size} differs from the NAR file's {facts.file_size} bytes")
    expected, actual = narinfo.file_hash, facts.file_hash
    if expected is not None and actual is not None:
        if expected.algo is not actual.algo:
            raise ValidationError(f"FileHash is {expected.algo.value}; the NAR file's {actual.algo.value} is known")
        if expected != actual:
            raise ValidationError(f"FileHash {expected.nix32()} differs from the NAR file's {actual.nix32()}")
    if narinfo.nar_size != facts.nar_size:
        raise ValidationError(f"NarSize {narinfo.nar_size} differs from the NAR's {facts.nar_size}")
    if narinfo.nar_hash != facts.nar_sha256:
        raise ValidationError(f"NarHash sha256:{nixbase32.encode(narinfo.nar_hash)} differs from the NAR's "
                              f"sha256:{nixbase32.encode(facts.nar_sha256)}")


def path_info(narinfo: NarInfo, node: Node) -> PathInfo:
    """The PathInfo of a checked narinfo: every field kept (what PathInfo has no place for as extras)."""
    return PathInfo(narinfo.store_path, node, narinfo.nar_size, narinfo.nar_hash, narinfo.references,
                    narinfo.signatures, narinfo.deriver, narinfo.ca, NarinfoExtras.of(narinfo))


def ingest_nar_file(castore: CAStore, raw: SupportsRead, compression: str, check: Callable[[NarFacts], None],
                    *, file_algo: HashAlgo = HashAlgo.SHA256,
                    progress: Callable[[int], None] = lambda size: None) -> tuple[Node, NarFacts]:
    """Stream a NAR file into castore; `check(facts)` runs before any directory is stored, and
    what it raises aborts the ingest. `progress` is told each piece of the file read."""
    tap = _Tap(raw, file_algo, progress)
    facts: NarFacts | None = None

    def measured(nar_size: int, nar_sha256: bytes) -> None:
        nonlocal facts
        tap.drain()
        facts = NarFacts(nar_size, nar_sha256, NixHash(file_algo, tap.digest()), tap.size)
        check(facts)

    node = ingest_nar(castore, decompressing(tap, compression), measured).node
    assert facts is not None  # ingest_nar returns only after `measured` passed
    return node, facts


def ingest_verified(castore: CAStore, raw: SupportsRead, narinfo: NarInfo, *,
                    progress: Callable[[int], None] = lambda size: None) -> PathInfo:
    """The NAR file `raw` as its narinfo describes it, ingested and checked; not put anywhere."""
    file_algo = narinfo.file_hash.algo if narinfo.file_hash is not None else HashAlgo.SHA256
    node, _ = ingest_nar_file(castore, raw, narinfo.effective_compression, lambda facts: check_narinfo(narinfo, facts),
                              file_algo=file_algo, progress=progress)
    return path_info(narinfo, node)


class _Tap:
    """A reader of the NAR file as it came that hashes and counts what flows through it."""

    def __init__(self, source: SupportsRead, algo: HashAlgo, progress: Callable[[int], None]) -> None:
        self._source = source
        self._hash = algo.new()
        self._progress = progress
        self.size = 0

    def read(self, size: int = -1, /) -> bytes:
        data = self._source.read(size)
        self._hash.update(data)
        self.size += len(data)
        self._progress(len(data))
        return data

    def drain(self) -> None:
        """Read what the decompressor left (a zstd reader may stop at its last frame)."""
        while self.read(PIECE):
            pass

    def digest(self) -> bytes:
        return self._hash.digest()
