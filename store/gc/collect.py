"""`cairn gc` and `cairn delete`: what is kept, and everything else given back.

Kept: the closures of the roots, of the paths added or served within --keep-since, and of
the paths added within the grace period; the nodes of uploads in progress (nar-bridge's
staged NARs); and, in the sweep, every chunk of a pack put within the grace period (an import
that has written its blobs but not yet its path info). Path records not kept are deleted
first; then the castore sweep (castore/local/sweep.py) frees chunks and packs. One GC at a
time per store (the metadata store's "gc" lock), while everything else goes on.

Memory: the kept paths' digests (about 100 bytes a path), the castore mark (16-32 bytes a live
chunk, see castore/local/marking.py) and the sweep's figures (about 200 bytes a frame, see
castore/local/sweep.py); records are streamed a page at a time.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass
from typing import Callable, Iterable

from castore.errors import BackendError, NotFoundError, ValidationError
from castore.local.engine import LocalEngine
from castore.local.marking import LiveSet, Marker
from castore.local.packs import PACKS, PackRow
from castore.local.sweep import COMMIT_RECORDS, RETIRED, SweepReport, Sweeper, delete_where
from castore.nodes import DirectoryNode, FileNode, decode_node
from castore.storage.metadata import Table
from store.gc import retention
from store.gc.engine import engine_of
from store.gc.roots import ROOTS, roots
from store.pathinfo.local import EXTRAS, NARCALC, NARHASH, NARSKELETON, PATHINFO, narhash_key
from store.pathinfo.model import PathInfo
from store.records.local import TABLES as RECORD_TABLES
from store.records.staged import StagedNar
from store.storepath import StorePath
from store.url import Store

GRACE = 3600.0
"""Default grace period: what was written within it is kept whatever else says."""
STATE = Table("gc-state")
"""b"last" -> the last GC's report (JSON), for `cairn stats`; b"totals" -> every GC's runs and
bytes freed so far (JSON): counters for metrics, which each `cairn gc` (a process of its own) adds to."""
TOTALS = b"totals"
NO_TOTALS = {"runs": 0, "bytesFreed": 0}
LOCK = "gc"
_PATH_TABLES = (PATHINFO, EXTRAS, retention.ADDED, retention.SERVED)
"""Keyed by store path digest: a deleted path's records go from each."""


@dataclass
class GcReport:
    started: float
    seconds: float
    dry_run: bool
    paths_kept: int
    paths: int
    """Path records deleted."""
    sweep: SweepReport
    metadata_before: int
    metadata_after: int

    @property
    def before(self) -> int:
        return self.sweep.pack_bytes_before + self.metadata_before

    @property
    def after(self) -> int:
        return self.sweep.pack_bytes_after + self.metadata_after

    def to_json(self) -> dict:
        return {"started": self.started, "seconds": self.seconds, "dryRun": self.dry_run,
                "pathsKept": self.paths_kept, "pathsDeleted": self.paths, "storeBytesBefore": self.before,
                "storeBytesAfter": self.after, **{_camel(k): v for k, v in asdict(self.sweep).items()}}


def collect(store: Store, *, keep_since: float | None = None, grace: float = GRACE, everything: bool = False,
            dry_run: bool = False, step: Callable[[str], None] = lambda what: None) -> GcReport:
    """Mark, then sweep; see the module's docstring."""
    engine = engine_of(store)
    if grace < 0 or (keep_since is not None and keep_since < 0):
        raise ValidationError("durations are not negative")
    engine.commit()
    if keep_since is None and not everything and next(engine.records.items(ROOTS), None) is None:
        raise ValidationError("no roots (`cairn root add`) and no --keep-since: this would delete every path; "
                              "give --everything to mean it")
    with engine.metadata.try_lock(LOCK) as got:
        if not got:
            raise BackendError("another garbage collection is running on this store")
        return _collect(engine, keep_since, grace, dry_run, step)


def _collect(engine: LocalEngine, keep_since: float | None, grace: float, dry_run: bool,
             step: Callable[[str], None]) -> GcReport:
    started = time.time()
    cutoff = started - grace
    metadata_before = engine.metadata.size_bytes()
    marker = Marker(engine, LiveSet())
    step("marking from roots, retained and young paths")
    kept = _kept_paths(engine, _seeds(engine, keep_since, cutoff, started), marker)
    step("marking uploads in progress")
    _mark_staged(engine, marker)
    # Paths added while the mark ran are young: mark them too, just before their records are swept.
    kept |= _kept_paths(engine, (d for d in retention.since(engine.records, retention.ADDED, cutoff)
                                 if d not in kept), marker, known=kept)
    step("deleting path records nobody keeps")
    paths = _sweep_paths(engine, kept, marker.live, cutoff, dry_run)
    report = Sweeper(engine, marker.live, grace=grace, now=started, dry_run=dry_run, step=step).run()
    gc = GcReport(started, time.time() - started, dry_run, len(kept), paths, report, metadata_before,
                  engine.metadata.size_bytes())
    if not dry_run:
        engine.metadata.commit({STATE: {b"last": json.dumps(gc.to_json()).encode(), TOTALS: _totals(engine, gc)}})
    return gc


def _totals(engine: LocalEngine, gc: GcReport) -> bytes:
    """The totals with this run added (read under the GC lock: no other run adds at the same time)."""
    raw = engine.records.get(STATE, TOTALS)
    totals = NO_TOTALS if raw is None else json.loads(raw)
    return json.dumps({"runs": totals["runs"] + 1,
                       "bytesFreed": totals["bytesFreed"] + max(gc.before - gc.after, 0)}).encode()


def _seeds(engine: LocalEngine, keep_since: float | None, cutoff: float, now: float) -> Iterable[bytes]:
    for _, paths in roots(engine):
        yield from (p.digest for p in paths)
    if keep_since is not None:
        yield from retention.since(engine.records, retention.ADDED, now - keep_since)
        yield from retention.since(engine.records, retention.SERVED, now - keep_since)
    yield from retention.since(engine.records, retention.ADDED, cutoff)


def _kept_paths(engine: LocalEngine, seeds: Iterable[bytes], marker: Marker | None,
                known: set[bytes] = frozenset()) -> set[bytes]:
    """The closure of `seeds` (paths the store holds), each path's node marked when a marker
    is given. A seed or reference the store lacks is skipped (a root may outlive a delete)."""
    kept: set[bytes] = set()
    queue: list[bytes] = []
    for digest in seeds:
        if digest not in kept and digest not in known:
            kept.add(digest)
            queue.append(digest)
    while queue:
        batch = queue[-1000:]
        del queue[-1000:]
        nodes = []
        for raw in engine.records.get_many(PATHINFO, batch):
            if raw is None:
                continue
            info = PathInfo.decode(raw)
            nodes.append(info.node)
            for ref in info.references:
                if ref.digest not in kept and ref.digest not in known:
                    kept.add(ref.digest)
                    queue.append(ref.digest)
        if marker is not None:
            marker.nodes(nodes)
    return kept


def _mark_staged(engine: LocalEngine, marker: Marker) -> None:
    """NARs uploaded to nar-bridge whose narinfo has not come yet (when the records live in
    this store; a bridge with a --state-dir of its own is covered by the grace period)."""
    nodes = []
    for _, raw in engine.records.items(RECORD_TABLES["staged"]):
        nodes.append(StagedNar.decode(raw).node)
        if len(nodes) >= 1000:
            marker.nodes(nodes)
            nodes = []
    marker.nodes(nodes)


def _sweep_paths(engine: LocalEngine, kept: set[bytes], live: LiveSet, cutoff: float, dry_run: bool) -> int:
    """Delete the records of paths not kept (a path added since the mark is young: kept), the
    NAR-hash index entries naming them, and cached NAR sizes and skeletons of roots nobody keeps."""
    deleted = 0
    doomed: list[bytes] = []
    for digest, _ in engine.records.items(PATHINFO):
        if digest in kept or retention.is_young(engine.records, digest, cutoff):
            continue
        deleted += 1
        doomed.append(digest)
        if len(doomed) >= COMMIT_RECORDS:
            _delete_paths(engine, doomed, dry_run)
            doomed = []
    _delete_paths(engine, doomed, dry_run)
    if dry_run:
        return deleted
    delete_where(engine.metadata, NARHASH, lambda key, path: path not in kept and engine.metadata.get(PATHINFO, path) is None)
    delete_where(engine.metadata, NARCALC, lambda key, value: not _node_live(key, live))
    delete_where(engine.metadata, NARSKELETON, lambda key, value: key not in live)
    delete_where(engine.metadata, retention.SERVED, lambda key, value: engine.metadata.get(PATHINFO, key) is None)
    return deleted


def _node_live(encoded: bytes, live: LiveSet) -> bool:
    node = decode_node(encoded)
    return not isinstance(node, (DirectoryNode, FileNode)) or node.digest in live


def _delete_paths(engine: LocalEngine, digests: list[bytes], dry_run: bool) -> None:
    if digests and not dry_run:
        engine.metadata.commit({}, {table: digests for table in _PATH_TABLES})


def delete_path(store: Store, path: StorePath, force: bool = False) -> None:
    """Delete a path's record (its data goes at the next GC). Refused, unless `force`, while a
    root keeps it (directly or as part of a rooted closure) or another path refers to it, as Nix
    refuses to delete a path that is still alive: the store's closures stay whole."""
    engine = engine_of(store)
    engine.commit()
    raw = engine.metadata.get(PATHINFO, path.digest)
    if raw is None:
        raise NotFoundError(f"{path.absolute} is not in the store")
    if not force:
        _refuse_if_alive(engine, path)
    info = PathInfo.decode(raw)
    deletes = {table: [path.digest] for table in _PATH_TABLES}
    deletes[NARHASH] = [narhash_key(info)]
    engine.metadata.commit({}, deletes)


def _refuse_if_alive(engine: LocalEngine, path: StorePath) -> None:
    all_roots = list(roots(engine))
    if path.digest in _kept_paths(engine, (p.digest for _, paths in all_roots for p in paths), None):
        name = next(name for name, paths in all_roots
                    if path.digest in _kept_paths(engine, (p.digest for p in paths), None))
        raise ValidationError(f"{path.absolute} is kept by root {name!r}: remove the root first, or give --force")
    for digest, raw in engine.metadata.items(PATHINFO):
        info = PathInfo.decode(raw)
        if digest != path.digest and path in info.references:
            raise ValidationError(f"{path.absolute} is still referred to by {info.store_path.absolute}: "
                                  "delete that first, or give --force")


def status(store: Store) -> dict | None:
    """For `cairn stats` and metrics: the last GC's report (None if none ran), the bytes of packs
    retired since, which the next GC deletes once the grace period has passed, and every GC's
    runs and bytes freed. None when the store is not embedded."""
    try:
        engine = engine_of(store)
    except ValidationError:
        return None
    raw = engine.records.get(STATE, b"last")
    totals = engine.records.get(STATE, TOTALS)
    packs = {k: PackRow.decode(v).size for k, v in engine.records.items(PACKS)}
    retired = sum(packs.get(k, 0) for k, _ in engine.records.items(RETIRED))
    return {"lastRun": None if raw is None else json.loads(raw), "reclaimableBytes": retired,
            **(NO_TOTALS if totals is None else json.loads(totals))}


def _camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(w.title() for w in rest)
