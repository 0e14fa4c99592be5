"""`cairn archive`: move a Nix binary cache into the store, every narinfo field kept.

A source is a `file://` cache (listed: every `*.narinfo`) or an `http(s)://` one (not
listable: the closures of given roots are walked through References). Each path's
NAR streams from the source through a hashing tap (FileHash, FileSize), the
decompressor and NAR ingest; nothing is buffered whole. A path is recorded only
after every check passed, as one PathInfo (with its narinfo extras), which marks it
archived, so a killed run leaves either a complete record or none and the next run redoes
only what is missing.
"""

from __future__ import annotations

import http.client
import os
import threading
import time
import urllib.error
import urllib.request
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass
from enum import Enum
from pathlib import Path
from typing import BinaryIO, Callable, Iterable, Protocol
from urllib.parse import urljoin, urlsplit

from castore.errors import CastoreError, NotFoundError, ValidationError
from castore.progress import human_bytes
from store.compression import decompressing
from store import nixbase32
from store.nar import SupportsRead
from store.nar.ingest import ingest_nar
from store.narinfo import NarInfo, NarinfoExtras
from store.nixhash import HashAlgo
from store.pathinfo.model import PathInfo
from store.storepath import StorePath
from store.url import Store

PIECE = 1 << 16
HTTP_TIMEOUT = 120
NARINFO_SUFFIX = ".narinfo"


class Source(Protocol):
    """Where narinfos and NAR files come from."""

    def list(self) -> list[str]:
        """Hash parts of every path it holds; ValidationError when it cannot be listed."""

    def narinfo(self, hash_part: str) -> bytes:
        """The narinfo document; NotFoundError or FileNotFoundError when absent."""

    def open_nar(self, url: str) -> BinaryIO:
        """A reader of the NAR file the narinfo's URL names; NotFoundError or FileNotFoundError when absent."""


class FileSource:
    def __init__(self, root: Path) -> None:
        self.root = root

    def list(self) -> list[str]:
        return sorted(p.name[:-len(NARINFO_SUFFIX)] for p in self.root.glob(f"*{NARINFO_SUFFIX}"))

    def narinfo(self, hash_part: str) -> bytes:
        return self._file(f"{hash_part}{NARINFO_SUFFIX}").read_bytes()

    def open_nar(self, url: str) -> BinaryIO:
        return self._file(url).open("rb")

    def _file(self, relative: str) -> Path:
        """A file below the root, never outside it (a narinfo's URL is untrusted input)."""
        path = Path(os.path.normpath(self.root / relative))
        if self.root not in path.parents:
            raise ValidationError(f"{relative!r} points outside the cache")
        return path


class HttpSource:
    def __init__(self, base: str) -> None:
        self.base = base.rstrip("/") + "/"

    def list(self) -> list[str]:
        raise ValidationError("an HTTP cache cannot be listed: give root store paths (--roots FILE or STORE_PATH)")

    def narinfo(self, hash_part: str) -> bytes:
        with self._open(f"{hash_part}{NARINFO_SUFFIX}") as response:
            return response.read()

    def open_nar(self, url: str) -> BinaryIO:
        return self._open(url)

    def _open(self, relative: str) -> BinaryIO:
        url = urljoin(self.base, relative)
        try:
            return urllib.request.urlopen(url, timeout=HTTP_TIMEOUT)
        except urllib.error.HTTPError as e:
            e.close()
            if e.code in (403, 404):
                raise NotFoundError(f"{url}: HTTP {e.code}") from None
            raise OSError(f"{url}: HTTP {e.code}") from None


def open_source(url: str) -> Source:
    parts = urlsplit(url)
    if parts.scheme == "file" and not parts.netloc and parts.path.startswith("/"):
        return FileSource(Path(os.path.normpath(parts.path)))
    if parts.scheme in ("http", "https") and parts.netloc:
        return HttpSource(url)
    raise ValidationError(f"archive source {url!r} is not file:///dir or http(s)://host/path")


class Status(Enum):
    ARCHIVED = "archived"
    SKIPPED = "skipped"  # archived by an earlier run
    FAILED = "failed"


@dataclass(frozen=True)
class Outcome:
    hash_part: str
    status: Status
    store_path: StorePath | None = None
    references: tuple[StorePath, ...] = ()
    nar_bytes: int = 0
    source_bytes: int = 0
    error: str = ""

    @property
    def name(self) -> str:
        return self.store_path.absolute if self.store_path else self.hash_part


@dataclass
class ArchiveReport:
    archived: int = 0
    skipped: int = 0
    failed: int = 0
    nar_bytes: int = 0
    source_bytes: int = 0
    new_stored_bytes: int | None = None
    seconds: float = 0.0

    def add(self, outcome: Outcome) -> None:
        if outcome.status is Status.ARCHIVED:
            self.archived += 1
        elif outcome.status is Status.SKIPPED:
            self.skipped += 1
        else:
            self.failed += 1
        self.nar_bytes += outcome.nar_bytes
        self.source_bytes += outcome.source_bytes

    def summary(self) -> str:
        stored = self.new_stored_bytes
        sizes = (f"{human_bytes(self.nar_bytes)} of NAR from {human_bytes(self.source_bytes)} of source, "
                 f"{'unknown' if stored is None else human_bytes(stored)} new stored")
        ratios = ("" if not stored else
                  f"; NAR/stored {self.nar_bytes / stored:.2f}x, source/stored {self.source_bytes / stored:.2f}x")
        return (f"archived {self.archived} paths, {self.skipped} already archived, {self.failed} failed: "
                f"{sizes}{ratios}; {self.seconds:.1f}s")


class _Meter:
    """Source bytes read so far across threads, against the FileSize of the narinfos seen."""

    def __init__(self, update: Callable[[int, int], None]) -> None:
        self._update = update
        self._lock = threading.Lock()
        self.done = 0
        self.total = 0

    def expect(self, size: int) -> None:
        with self._lock:
            self.total += size

    def read(self, size: int) -> None:
        with self._lock:
            self.done += size
            done, total = self.done, max(self.total, self.done)
        self._update(done, total)


class _Tap:
    """A reader of the compressed source that hashes and counts what flows through it."""

    def __init__(self, source: SupportsRead, algo: HashAlgo, meter: _Meter) -> None:
        self._source = source
        self._hash = algo.new()
        self._meter = meter
        self.size = 0

    def read(self, size: int = -1, /) -> bytes:
        data = self._source.read(size)
        self._hash.update(data)
        self.size += len(data)
        self._meter.read(len(data))
        return data

    def drain(self) -> None:
        """Read what the decompressor left (a zstd reader may stop at its last frame)."""
        while self.read(PIECE):
            pass

    def digest(self) -> bytes:
        return self._hash.digest()


def archive(store: Store, source: Source, roots: Iterable[StorePath] = (), *, jobs: int = 4,
            progress: Callable[[int, int], None] = lambda done, total: None,
            on_outcome: Callable[[Outcome], None] = lambda outcome: None) -> ArchiveReport:
    """Archive the closures of `roots` (walked through References), or every path of a listable source."""
    started = time.monotonic()
    stored_before = store.castore.blobs.stored_bytes()
    roots = [r.hash_part for r in roots]
    walk = bool(roots)
    report = ArchiveReport()
    meter = _Meter(progress)
    seen = set(roots or source.list())
    with ThreadPoolExecutor(max(1, jobs), thread_name_prefix="archive") as pool:
        pending: set[Future[Outcome]] = {pool.submit(_archive_one, store, source, h, meter) for h in sorted(seen)}
        while pending:
            done, pending = wait(pending, return_when=FIRST_COMPLETED)
            for future in done:
                outcome = future.result()
                report.add(outcome)
                on_outcome(outcome)
                for ref in outcome.references if walk else ():
                    if ref.hash_part not in seen:
                        seen.add(ref.hash_part)
                        pending.add(pool.submit(_archive_one, store, source, ref.hash_part, meter))
    stored_after = store.castore.blobs.stored_bytes()
    if stored_before is not None and stored_after is not None:
        report.new_stored_bytes = stored_after - stored_before
    report.seconds = time.monotonic() - started
    return report


def _archive_one(store: Store, source: Source, hash_part: str, meter: _Meter) -> Outcome:
    """One path, checked and recorded; any bad input becomes a FAILED outcome, never a record."""
    store_path = None  # named in the report once the narinfo said it
    try:
        known = store.pathinfo.get(nixbase32.decode(hash_part))
        if known is not None:
            return Outcome(hash_part, Status.SKIPPED, known.store_path, known.references)
        narinfo = NarInfo.parse(source.narinfo(hash_part))
        if narinfo.store_path.hash_part != hash_part:
            raise ValidationError(f"the narinfo for {hash_part} describes {narinfo.store_path}")
        store_path = narinfo.store_path
        meter.expect(narinfo.file_size or 0)
        info, source_bytes = _ingest(store, source, narinfo, meter)
        store.pathinfo.put(info)
        return Outcome(hash_part, Status.ARCHIVED, info.store_path, info.references, info.nar_size, source_bytes)
    except (CastoreError, OSError, http.client.HTTPException) as e:
        return Outcome(hash_part, Status.FAILED, store_path,
                       error=str(e).splitlines()[0] if str(e) else type(e).__name__)


def _ingest(store: Store, source: Source, narinfo: NarInfo, meter: _Meter) -> tuple[PathInfo, int]:
    """Stream the NAR file into castore and check it against every hash and size the narinfo gives."""
    expected_file = narinfo.file_hash
    with source.open_nar(narinfo.url) as raw:
        tap = _Tap(raw, expected_file.algo if expected_file else HashAlgo.SHA256, meter)
        result = ingest_nar(store.castore, decompressing(tap, narinfo.effective_compression))
        tap.drain()
    if narinfo.file_size is not None and tap.size != narinfo.file_size:
        raise ValidationError(f"NAR file is {tap.size} bytes, FileSize says {narinfo.file_size}")
    if expected_file is not None and tap.digest() != expected_file.digest:
        raise ValidationError(f"NAR file does not match FileHash {expected_file}")
    if (result.nar_size, result.nar_sha256) != (narinfo.nar_size, narinfo.nar_hash):
        raise ValidationError("NAR does not match NarHash and NarSize")
    info = PathInfo(narinfo.store_path, result.node, result.nar_size, result.nar_sha256, narinfo.references,
                    narinfo.signatures, narinfo.deriver, narinfo.ca, NarinfoExtras.of(narinfo))
    return info, tap.size
