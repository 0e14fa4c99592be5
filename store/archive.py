"""`cairn archive`: move a Nix binary cache into the store, every narinfo field kept.

A source is a `file://` cache (listed: every `*.narinfo`) or an `http(s)://` one (not
listable: the closures of given roots are walked through References). Each path's
NAR streams from the source through the verified ingest (FileHash, FileSize, NarHash,
NarSize checked); nothing is buffered whole. A path is recorded only
after every check passed, as one PathInfo (with its narinfo extras), which marks it
archived, so a killed run leaves either a complete record or none and the next run redoes
only what is missing.
"""

from __future__ import annotations

import http.client
import threading
import time
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass
from enum import Enum
from typing import Callable, Iterable

from castore.errors import CastoreError, ValidationError
from castore.progress import human_bytes
from store import nixbase32
from store.binary_cache import Source
from store.narinfo import NarInfo
from store.storepath import StorePath
from store.url import Store
from store.verified_ingest import ingest_verified


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
        source_bytes = 0

        def read(size: int) -> None:
            nonlocal source_bytes
            source_bytes += size
            meter.read(size)

        with source.open_nar(narinfo.url) as raw:
            info = ingest_verified(store.castore, raw, narinfo, progress=read)
        store.pathinfo.put(info)
        return Outcome(hash_part, Status.ARCHIVED, info.store_path, info.references, info.nar_size, source_bytes)
    except (CastoreError, OSError, http.client.HTTPException) as e:
        return Outcome(hash_part, Status.FAILED, store_path,
                       error=str(e).splitlines()[0] if str(e) else type(e).__name__)
