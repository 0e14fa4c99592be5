"""Garbage collection's sweep in the embedded engine: records, then packs, given what is live.

Given the mark (marking.py), a sweep
1. finishes what a GC that died left half done (packs it put or was deleting, see UNNAMED);
2. puts back swept records that something kept names again (see tombstones.py);
3. keeps every chunk of a pack put within the grace period (an import or upload in progress
   has written it and not yet the records naming it), and the delta bases of kept chunks;
4. moves the records of chunks, chunked blobs and directory rows nobody keeps to their
   tombstones, and drops the delta index entries naming them;
5. retires packs with nothing live, and rewrites packs less than half live: their live frames
   are copied into new packs (whole when every chunk of a frame is live, else recompressed)
   and their records repointed; a reader holding an old location finds the new one on retry;
6. deletes packs retired more than the grace period ago, with the tombstones naming them (and
   the tombstoned rows of directories whose chunk that leaves unreadable), and packs no row
   has named for the grace period (a writer died before its commit: STRAYS).

Crash safety: every step is one or more atomic commits, each leaving a store that reads
everything kept. Data goes only after the records naming it: a pack is named in UNNAMED in the
commit that drops its row (or before a rewrite puts it), deleted, and then un-named; a GC
that dies in between leaves an UNNAMED entry the next one finishes. Records are streamed a
page at a time; memory is the mark, about 150 bytes per frame and per pack, READ_BYTES of frames
being copied, and the records of at most REWRITE_CHUNKS chunks being moved.
"""

from __future__ import annotations

import struct
import time
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Callable, Iterator

import zstandard

from castore.blobs.local import BLOBS
from castore.directories.local import DIRECTORY_ROWS
from castore.grouping import grouped
from castore.local import tombstones
from castore.local.engine import CHUNKS, SIMILAR, LocalEngine
from castore.local.frames import DELTA, SMALL, ChunkRecord, Location
from castore.local.marking import LiveSet
from castore.local.packs import PACKS, PackRow, number_of, pack_number
from castore.storage.metadata import MetadataStore, Table
from castore.storage.packs import pack_name

RETIRED = Table("gc-retired")
"""Pack number -> when GC found nothing live in it (u64 seconds): deleted after the grace period."""
UNNAMED = Table("gc-unnamed")
"""Pack name -> b"": a pack GC put for a rewrite or is deleting, which no row may name at the
start of the next GC: that GC deletes it (unless a row names it) and drops the entry."""
STRAYS = Table("gc-strays")
"""Pack name -> when a GC first found it with no row naming it (u64 seconds): a writer that
died between putting a pack and committing its records left it. Deleted when a GC at least
the grace period later finds it still unnamed."""
COMMIT_RECORDS = 10_000
"""Records per sweep commit: commits stay small, and a concurrent writer waits little."""
READ_BYTES = 32 * 1024 * 1024
"""Compressed bytes of live frames a rewrite asks the pack store for at once (one request to
object storage, however many frames)."""
REWRITE_CHUNKS = 200_000
"""Live chunks one GC moves at most (about 50 MB of their records); the next GC goes on."""
_TIME = struct.Struct(">Q")


@dataclass
class SweepReport:
    resurrected: int = 0
    """Swept records put back because something kept names them again."""
    chunks: int = 0
    """Chunk records swept (kept as tombstones until their pack goes)."""
    blobs: int = 0
    directories: int = 0
    """Directory rows swept (kept as tombstones while their chunk's is)."""
    packs_retired: int = 0
    packs_rewritten: int = 0
    bytes_moved: int = 0
    """Compressed bytes of live frames copied into new packs."""
    packs_deleted: int = 0
    bytes_deleted: int = 0
    dead_bytes: int = 0
    """Bytes of old packs that hold nothing live (after this sweep: what the next ones free)."""
    pending_bytes: int = 0
    """Bytes of retired packs still inside the grace period."""
    pack_bytes_before: int = 0
    pack_bytes_after: int = 0


@dataclass(slots=True)
class _Frame:
    length: int
    """Compressed."""
    live: int = 0
    total: int = 0
    live_bytes: int = 0
    """Uncompressed bytes of live chunks, of `total_bytes` in all."""
    total_bytes: int = 0


@dataclass
class _PackUse:
    frames: dict[int, _Frame] = field(default_factory=dict)

    def live_bytes(self) -> int:
        """Compressed bytes that are live, a frame's shared among its chunks by their sizes."""
        return int(sum(f.length * f.live_bytes / f.total_bytes if f.total_bytes else f.length
                       for f in self.frames.values() if f.live))


class Sweeper:
    def __init__(self, engine: LocalEngine, live: LiveSet, *, grace: float, now: float | None = None,
                 dry_run: bool = False, step: Callable[[str], None] = lambda what: None) -> None:
        self._engine = engine
        self._records = engine.records
        self._meta = engine.metadata
        self._store = engine.packs.store
        self.live = live
        self._now = time.time() if now is None else now
        self._grace = grace
        self._cutoff = self._now - grace
        self._dry = dry_run
        self._step = step
        self.report = SweepReport()

    def run(self) -> SweepReport:
        self._engine.commit()  # this process's staged records are committed, so the sweep sees them
        self._step("finishing an interrupted collection")
        self._finish_unnamed()
        packs = {number_of(k): PackRow.decode(v) for k, v in self._meta.items(PACKS)}
        retired = {number_of(k): _TIME.unpack(v)[0] for k, v in self._meta.items(RETIRED)}
        self.report.pack_bytes_before = sum(p.size for p in packs.values())
        self._step("putting back swept records kept again")
        self._resurrect(retired)
        self._step("keeping new chunks and delta bases")
        self._keep_young_and_bases(packs)
        self._step("sweeping chunk records")
        use = self._sweep_chunks(packs)
        self._resurrect(retired, use)  # bases of chunks committed during the sweep, swept before them
        self._step("sweeping blob and directory records and the delta index")
        self._sweep_unkept(BLOBS)
        self._sweep_unkept(DIRECTORY_ROWS)
        self._sweep_similar()
        self._step("retiring and rewriting packs")
        sparse = self._retire(packs, retired, use)
        self._rewrite(packs, retired, sparse, use)
        self._step("deleting retired packs")
        self._delete_retired(packs, retired)
        self._step("deleting packs writers left unnamed")
        self._delete_strays()
        self._drop_old_blob_tombstones()
        self.report.pack_bytes_after = sum(PackRow.decode(v).size for _, v in self._meta.items(PACKS)) \
            if not self._dry else self.report.pack_bytes_before - self.report.bytes_deleted + self.report.bytes_moved
        return self.report

    # -- the steps ---------------------------------------------------------------------------

    def _finish_unnamed(self) -> None:
        if self._dry:
            return
        named = {PackRow.decode(v).name for _, v in self._meta.items(PACKS)}
        for name, _ in list(self._meta.items(UNNAMED)):
            if name.decode() not in named:
                self._store.delete(name.decode())
            self._meta.commit({}, {UNNAMED: [name]})

    def _resurrect(self, retired: dict[int, int], use: dict[int, _PackUse] | None = None) -> None:
        """Put back the tombstoned records of live chunks and blobs, and of the bases of those
        that are deltas; their packs are no longer retired, and count them in `use`."""
        again = True
        while again:
            again = False
            for table in (CHUNKS, BLOBS, DIRECTORY_ROWS):
                back = {digest: tombstones.decode(raw)[1]
                        for digest, raw in self._meta.items(tombstones.tombstones(table)) if digest in self.live}
                for batch in _batches(back):
                    unretire = set()
                    if table is CHUNKS:
                        for value in batch.values():
                            record = ChunkRecord.decode(value)
                            unretire.add(record.location.pack)
                            if use is not None:
                                _count(use, record.location, live=True)
                            if record.base is not None and self.live.add(record.base):
                                again = True
                    unretire = [n for n in unretire if retired.pop(n, None) is not None]
                    self.report.resurrected += len(batch)
                    self._commit({table: batch}, {tombstones.tombstones(table): list(batch),
                                                  RETIRED: [pack_number(n) for n in unretire]})
                    if self._dry:  # nothing is put back: do not count it again
                        again = False

    def _keep_young_and_bases(self, packs: dict[int, PackRow]) -> None:
        """Chunks in packs put within the grace period (or since the sweep began: no row loaded)
        are kept; so is the base of every kept delta, and its base in turn (a chain is rare)."""
        bases: list[bytes] = []
        for digest, raw in self._meta.items(CHUNKS):
            record = ChunkRecord.decode(raw)
            row = packs.get(record.location.pack)
            if row is None or row.created >= self._cutoff:
                self.live.add(digest)
            if record.base is not None and digest in self.live and self.live.add(record.base):
                bases.append(record.base)
        while bases:
            batch, bases = bases[:COMMIT_RECORDS], bases[COMMIT_RECORDS:]
            for raw in self._records.get_many(CHUNKS, batch):
                record = None if raw is None else ChunkRecord.decode(raw)
                if record is not None and record.base is not None and self.live.add(record.base):
                    bases.append(record.base)

    def _sweep_chunks(self, packs: dict[int, PackRow]) -> dict[int, _PackUse]:
        """Tombstones for unkept chunk records; what each pack's frames hold. A chunk committed
        since the sweep began (its pack has no row loaded) is young: kept, with its base."""
        use: dict[int, _PackUse] = defaultdict(_PackUse)
        dead: dict[bytes, bytes] = {}
        for digest, raw in self._meta.items(CHUNKS):
            record = ChunkRecord.decode(raw)
            if record.location.pack not in packs:
                self.live.add(digest)
                if record.base is not None:
                    self.live.add(record.base)
            live = digest in self.live
            _count(use, record.location, live)
            if live:
                continue
            dead[digest] = tombstones.encode(int(self._now), raw)
            if len(dead) >= COMMIT_RECORDS:
                self._tombstone(CHUNKS, dead)
                dead = {}
        self._tombstone(CHUNKS, dead)
        return use

    def _sweep_unkept(self, table: Table) -> None:
        """Tombstones for the records of `table` (keyed by digest) that nothing keeps."""
        dead: dict[bytes, bytes] = {}
        for digest, raw in self._meta.items(table):
            if digest not in self.live:
                dead[digest] = tombstones.encode(int(self._now), raw)
                if len(dead) >= COMMIT_RECORDS:
                    self._tombstone(table, dead)
                    dead = {}
        self._tombstone(table, dead)

    def _tombstone(self, table: Table, dead: dict[bytes, bytes]) -> None:
        if not dead:
            return
        counted = {CHUNKS: "chunks", BLOBS: "blobs", DIRECTORY_ROWS: "directories"}[table]
        setattr(self.report, counted, getattr(self.report, counted) + len(dead))
        self._commit({tombstones.tombstones(table): dead}, {table: list(dead)})

    def _sweep_similar(self) -> None:
        """Delta index entries naming unkept chunks: a new chunk must not pick a base GC drops."""
        self._delete_where(SIMILAR, lambda feature, base: base not in self.live)

    def _retire(self, packs: dict[int, PackRow], retired: dict[int, int],
                use: dict[int, _PackUse]) -> list[int]:
        """Retire old packs with nothing live; the old ones less than half live, to rewrite."""
        empty, sparse = [], []
        for number, row in packs.items():
            if number in retired or row.created >= self._cutoff:
                continue
            live = use[number].live_bytes() if number in use else 0
            if live == 0:
                empty.append(number)
            elif live < row.size / 2:
                sparse.append(number)
            self.report.dead_bytes += row.size - live
        self.report.packs_retired += len(empty)
        for number in empty:
            retired[number] = int(self._now)
        self._commit({RETIRED: {pack_number(n): _TIME.pack(int(self._now)) for n in empty}})
        return sparse

    def _rewrite(self, packs: dict[int, PackRow], retired: dict[int, int], sparse: list[int],
                 use: dict[int, _PackUse]) -> None:
        if not sparse:
            return
        chosen: set[int] = set()
        count = 0
        for number in sorted(sparse):  # whole packs, up to REWRITE_CHUNKS live chunks in all
            live = sum(f.live for f in use[number].frames.values())
            if chosen and count + live > REWRITE_CHUNKS:
                break
            chosen.add(number)
            count += live
        moving = self._live_chunks(chosen)
        if self._dry:
            moved = {r.location.pack for _, r in moving}
            self.report.packs_rewritten = len(moved)
            self.report.bytes_moved = sum(use[n].live_bytes() for n in moved)
            retired.update((n, int(self._now)) for n in moved)
            return
        writer = _PackWriter(self)
        by_pack: dict[int, list[tuple[bytes, ChunkRecord]]] = defaultdict(list)
        for digest, record in moving:
            by_pack[record.location.pack].append((digest, record))
        for number in sorted(by_pack):
            chunks = sorted(by_pack[number], key=lambda c: (c[1].location.frame_offset, c[1].location.offset))
            frames = [frame_chunks for _, frame_chunks in _group(chunks, lambda c: c[1].location.frame_offset)]
            for batch in grouped(frames, lambda chunks: chunks[0][1].location.frame_length, READ_BYTES):
                ranges = [(c[0][1].location.frame_offset, c[0][1].location.frame_length) for c in batch]
                for frame_chunks, compressed in zip(batch, self._store.read(packs[number].name, ranges)):
                    writer.copy_frame(compressed, use[number].frames[frame_chunks[0][1].location.frame_offset],
                                      frame_chunks)
            writer.done_with(number)
            retired[number] = int(self._now)
            self.report.packs_rewritten += 1
        writer.flush()

    def _live_chunks(self, packs: set[int]) -> list[tuple[bytes, ChunkRecord]]:
        """The chunk records of these packs (every one left is live: the dead are swept)."""
        found = []
        for digest, raw in self._meta.items(CHUNKS):
            record = ChunkRecord.decode(raw)
            if record.location.pack in packs:
                found.append((digest, record))
        return found

    def _delete_retired(self, packs: dict[int, PackRow], retired: dict[int, int]) -> None:
        """Packs retired at least the grace period ago, with the tombstones naming them (and
        tombstones of packs already gone)."""
        cutoff = time.time() - self._grace if not self._dry else self._cutoff
        doomed = {n for n, when in retired.items() if when <= cutoff and n in packs}
        for n in doomed:
            self.report.packs_deleted += 1
            self.report.bytes_deleted += packs[n].size
        self.report.pending_bytes = sum(packs[n].size for n in retired if n in packs and n not in doomed)
        if self._dry:
            return
        dead_chunks = tombstones.tombstones(CHUNKS)
        self._delete_where(dead_chunks, lambda digest, raw: (
            pack := ChunkRecord.decode(tombstones.decode(raw)[1]).location.pack) in doomed or pack not in packs)
        self._delete_where(tombstones.tombstones(DIRECTORY_ROWS),
                           lambda digest, raw: self._meta.get(dead_chunks, digest) is None)
        if not doomed:
            return
        names = [packs[n].name for n in doomed]
        self._commit({UNNAMED: {name.encode(): b"" for name in names}},
                     {PACKS: [pack_number(n) for n in doomed], RETIRED: [pack_number(n) for n in doomed]})
        for name in names:
            self._store.delete(name)
        self._commit({}, {UNNAMED: [name.encode() for name in names]})
        stale = [pack_number(n) for n in retired if n not in packs]
        self._commit({}, {RETIRED: stale})

    def _delete_strays(self) -> None:
        if self._dry:
            return
        named = {PackRow.decode(v).name for _, v in self._meta.items(PACKS)}
        seen = {k.decode(): _TIME.unpack(v)[0] for k, v in self._meta.items(STRAYS)}
        found: dict[str, int] = {}
        for name, size in self._store.list():
            if name in named:
                continue
            first = seen.pop(name, None)
            if first is None:
                found[name] = int(self._now)
            elif first <= self._cutoff:
                self._commit({UNNAMED: {name.encode(): b""}}, {STRAYS: [name.encode()]})
                self._store.delete(name)
                self._commit({}, {UNNAMED: [name.encode()]})
                self.report.packs_deleted += 1
                self.report.bytes_deleted += size
        self._commit({STRAYS: {n.encode(): _TIME.pack(t) for n, t in found.items()}},
                     {STRAYS: [n.encode() for n in seen]})  # seen before, named or gone since

    def _drop_old_blob_tombstones(self) -> None:
        if self._dry:
            return
        self._delete_where(tombstones.tombstones(BLOBS), lambda digest, raw: (
            tombstones.decode(raw)[0] <= self._cutoff and digest not in self.live))

    def _delete_where(self, table: Table, doomed: Callable[[bytes, bytes], bool]) -> None:
        if not self._dry:
            delete_where(self._meta, table, doomed)

    def _commit(self, puts: dict[Table, dict[bytes, bytes]], deletes: dict[Table, list[bytes]] = {}) -> None:
        puts = {t: p for t, p in puts.items() if p}
        deletes = {t: d for t, d in deletes.items() if d}
        if not self._dry and (puts or deletes):
            self._meta.commit(puts, deletes)


class _PackWriter:
    """Live frames of sparse packs, copied into new packs of up to the pack store's pack_bytes."""

    def __init__(self, sweeper: Sweeper) -> None:
        self._sweeper = sweeper
        self._data = bytearray()
        self._records: dict[bytes, ChunkRecord] = {}
        self._done: list[int] = []  # old packs whose every live chunk is in _data or committed
        self._cctx = {False: zstandard.ZstdCompressor(level=SMALL.level),
                      True: zstandard.ZstdCompressor(level=DELTA.level)}

    def copy_frame(self, compressed: bytes, frame: _Frame, chunks: list[tuple[bytes, ChunkRecord]]) -> None:
        if frame.live == frame.total:  # the whole frame is live: copied as it is
            offset = self._append(compressed)
            for digest, record in chunks:
                self._records[digest] = record._replace(location=record.location._replace(
                    pack=-1, frame_offset=offset))
            self._sweeper.report.bytes_moved += len(compressed)
            return
        plain = zstandard.ZstdDecompressor().decompress(compressed)
        pieces, placed, pos = [], [], 0
        for digest, record in chunks:
            loc = record.location
            pieces.append(plain[loc.offset:loc.offset + loc.length])
            placed.append((digest, record, pos))
            pos += loc.length
        new = self._cctx[chunks[0][1].base is not None].compress(b"".join(pieces))
        offset = self._append(new)
        for digest, record, at in placed:
            self._records[digest] = record._replace(
                location=Location(-1, offset, len(new), at, record.location.length))
        self._sweeper.report.bytes_moved += len(new)

    def done_with(self, pack: int) -> None:
        self._done.append(pack)

    def _append(self, frame: bytes) -> int:
        if self._data and len(self._data) + len(frame) > self._sweeper._store.pack_bytes:
            self.flush()
        offset = len(self._data)
        self._data += frame
        return offset

    def flush(self) -> None:
        """Put the new pack and, in one commit, name it, repoint its chunks and retire the
        old packs now fully copied (a crash before the commit leaves only an UNNAMED pack)."""
        sweeper = self._sweeper
        meta = sweeper._meta
        now = int(sweeper._now)
        puts: dict[Table, dict[bytes, bytes]] = {}
        deletes: dict[Table, list[bytes]] = {}
        if self._data:
            name = pack_name(self._data)
            meta.commit({UNNAMED: {name.encode(): b""}})
            sweeper._store.put(name, bytes(self._data))
            number = meta.next_id("packs")
            puts[PACKS] = {pack_number(number): PackRow(name, len(self._data), now).encode()}
            puts[CHUNKS] = {d: r._replace(location=r.location._replace(pack=number)).encode()
                            for d, r in self._records.items()}
            deletes[CHUNKS] = list(self._records)
            deletes[UNNAMED] = [name.encode()]
        done, self._done = self._done, []
        puts[RETIRED] = {pack_number(n): _TIME.pack(now) for n in done}
        sweeper._commit(puts, deletes)
        self._data = bytearray()
        self._records = {}


def _count(use: dict[int, _PackUse], location: Location, live: bool) -> None:
    """Count a chunk into its frame's figures."""
    frame = use[location.pack].frames.setdefault(location.frame_offset, _Frame(location.frame_length))
    frame.total += 1
    frame.total_bytes += location.length
    if live:
        frame.live += 1
        frame.live_bytes += location.length


def delete_where(meta: MetadataStore, table: Table, doomed: Callable[[bytes, bytes], bool]) -> None:
    """Delete the records of `table` for which `doomed(key, value)`, streamed a page at a time."""
    keys: list[bytes] = []
    for key, value in meta.items(table):
        if doomed(key, value):
            keys.append(key)
            if len(keys) >= COMMIT_RECORDS:
                meta.commit({}, {table: keys})
                keys = []
    if keys:
        meta.commit({}, {table: keys})


def _batches(records: dict[bytes, bytes]) -> Iterator[dict[bytes, bytes]]:
    items = list(records.items())
    for start in range(0, len(items), COMMIT_RECORDS):
        yield dict(items[start:start + COMMIT_RECORDS])


def _group(items: list, key: Callable) -> Iterator[tuple[object, list]]:
    run: list = []
    for item in items:
        if run and key(run[-1]) != key(item):
            yield key(run[0]), run
            run = []
        run.append(item)
    if run:
        yield key(run[0]), run
