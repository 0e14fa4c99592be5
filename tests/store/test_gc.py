"""Garbage collection of the embedded store, in process: what is kept, what goes, and how
reads and writes that race a GC still find their data."""

from __future__ import annotations

import time
import zlib
from pathlib import Path
from typing import Callable, Iterator

import pytest

from castore.digest import B3Digest
from castore.errors import BackendError, NotFoundError, ValidationError
from castore.local.sweep import RETIRED
from castore.local import tombstones
from castore.local.engine import CHUNKS
from castore.local.frames import ChunkRecord
from store import api
from store.gc import retention
from store.gc.collect import collect, delete_path, status
from store.gc.engine import engine_of
from store.gc.roots import add_root, remove_root, roots
from store.url import Store, open_store
from store.verify import Tally, verify_chunks
from tests.castore.test_local_deltas import binary_like, patched
from tests.store.gc_tools import disk_bytes


def tree(root: Path, tag: str, files: int = 20, size: int = 50_000) -> Path:
    """A tree of distinct, poorly compressible files."""
    root.mkdir(parents=True)
    for i in range(files):
        (root / f"f{i}").write_bytes(binary_like(size, seed=zlib.crc32(f"{tag}/{i}".encode())))
    return root


def packs_of(store: Store) -> dict[str, int]:
    """The packs in the store's pack store (files or objects), name -> size."""
    return dict(engine_of(store).packs.store.list())


@pytest.fixture(params=["lmdb", "postgres", "postgres-s3"])
def reopen(request, tmp_path: Path) -> Callable[[], Store]:
    """Opens the store under test again: the embedded one, or the engine over PostgreSQL with
    packs in files (under the same directory, so the disk figures hold) or in object storage."""
    if request.param == "lmdb":
        return lambda: open_store(f"local://{tmp_path}/s")
    url = request.getfixturevalue("postgres_url")
    packs = request.getfixturevalue("s3_url") if request.param == "postgres-s3" else f"file://{tmp_path}/s/packs"
    return lambda: open_store(f"{url}&packs={packs}")


@pytest.fixture
def store(reopen: Callable[[], Store]) -> Iterator[Store]:
    with reopen() as s:
        yield s


def dumps(store: Store, info) -> bytes:
    return b"".join(api.dump(store, info.store_path))


def test_gc_keeps_rooted_paths_and_frees_the_rest(store: Store, tmp_path: Path) -> None:
    kept = api.import_path(store, tree(tmp_path / "kept", "k"))
    gone = api.import_path(store, tree(tmp_path / "gone", "g"))
    expected = dumps(store, kept)
    engine = engine_of(store)
    add_root(engine, "mine", [kept.store_path])
    before = disk_bytes(tmp_path / "s") + sum(packs_of(store).values())

    report = collect(store, grace=0)

    assert (report.paths, report.paths_kept) == (1, 1)
    assert report.sweep.chunks >= 20 and report.sweep.packs_deleted >= 1
    assert report.after < report.before
    assert store.pathinfo.get(gone.store_path.digest) is None
    assert dumps(store, kept) == expected
    assert disk_bytes(tmp_path / "s") + sum(packs_of(store).values()) < before - 500_000
    assert status(store)["lastRun"]["pathsDeleted"] == 1


def test_gc_without_roots_or_retention_refuses_unless_told_everything(store: Store, tmp_path: Path) -> None:
    info = api.import_path(store, tree(tmp_path / "t", "t", files=2))
    with pytest.raises(ValidationError, match="--everything"):
        collect(store, grace=0)
    assert collect(store, grace=0, everything=True).paths == 1
    assert store.pathinfo.get(info.store_path.digest) is None


def test_the_grace_period_keeps_young_paths_and_data(store: Store, tmp_path: Path) -> None:
    info = api.import_path(store, tree(tmp_path / "t", "t", files=3))
    report = collect(store, everything=True)  # default grace: one hour
    assert report.paths == 0 and report.sweep.chunks == 0 and report.sweep.packs_deleted == 0
    assert store.pathinfo.get(info.store_path.digest) is not None


def test_a_dry_run_reports_the_same_and_changes_nothing(store: Store, tmp_path: Path) -> None:
    kept = api.import_path(store, tree(tmp_path / "kept", "k", files=3))
    api.import_path(store, tree(tmp_path / "gone", "g", files=3))
    add_root(engine_of(store), "r", [kept.store_path])
    packs = packs_of(store)
    dry = collect(store, grace=0, dry_run=True)
    assert packs_of(store) == packs
    assert status(store)["lastRun"] is None
    real = collect(store, grace=0)
    assert (dry.paths, dry.sweep.chunks, dry.sweep.packs_deleted, dry.sweep.bytes_deleted) == \
        (real.paths, real.sweep.chunks, real.sweep.packs_deleted, real.sweep.bytes_deleted)


def test_keep_since_keeps_paths_added_or_served_within_it_with_their_closures(store: Store, reopen, tmp_path: Path) -> None:
    served = api.import_path(store, tree(tmp_path / "served", "s", files=2))
    idle = api.import_path(store, tree(tmp_path / "idle", "i", files=2))
    engine = engine_of(store)
    old = retention.stamp(1_000_000)
    engine.metadata.commit({retention.ADDED: {served.store_path.digest: old, idle.store_path.digest: old}})
    with reopen() as server:
        server.pathinfo.get(served.store_path.digest)  # served: remembered in memory ...
    # ... and written when the service closed
    report = collect(store, keep_since=3600, grace=0)
    assert report.paths == 1 and report.paths_kept == 1
    with reopen() as again:
        assert again.pathinfo.get(served.store_path.digest) is not None
        assert again.pathinfo.get(idle.store_path.digest) is None


def test_touches_are_written_at_most_every_interval(store: Store, tmp_path: Path) -> None:
    info = api.import_path(store, tree(tmp_path / "t", "t", files=1))
    engine = engine_of(store)
    touches = retention.Touches(engine.records, interval=3600)
    touches.touch(info.store_path.digest)
    engine.commit()
    assert engine.metadata.get(retention.SERVED, info.store_path.digest) is None
    touches.flush()
    assert engine.metadata.get(retention.SERVED, info.store_path.digest) is not None


def test_a_stamp_within_the_interval_is_not_written_again(store: Store, tmp_path: Path, monkeypatch) -> None:
    """Each short process (a dump, a path-info) closes its service: it does not commit a stamp
    that is as recent as a stamp can be precise; an older one it replaces."""
    info = api.import_path(store, tree(tmp_path / "t", "t", files=1))
    engine = engine_of(store)
    digest = info.store_path.digest
    recent = retention.stamp(time.time() - 30)
    engine.metadata.commit({retention.SERVED: {digest: recent}})
    commits = []
    real_put = engine.records.put
    monkeypatch.setattr(engine.records, "put", lambda *a: commits.append(a) or real_put(*a))
    touches = retention.Touches(engine.records, interval=60)
    touches.touch(digest)
    touches.flush()
    assert commits == [] and engine.metadata.get(retention.SERVED, digest) == recent
    engine.metadata.commit({retention.SERVED: {digest: retention.stamp(time.time() - 90)}})
    touches.touch(digest)
    touches.flush()
    assert len(commits) == 1 and retention.unstamp(engine.metadata.get(retention.SERVED, digest)) >= time.time() - 5


def test_roots_add_list_remove_and_refuse_unknown_paths(store: Store, tmp_path: Path) -> None:
    info = api.import_path(store, tree(tmp_path / "t", "t", files=1))
    engine = engine_of(store)
    add_root(engine, "web-1.2", [info.store_path])
    assert list(roots(engine)) == [("web-1.2", [info.store_path])]
    with pytest.raises(NotFoundError):
        add_root(engine, "x", [api.parse_store_path("/nix/store/" + "a" * 32 + "-missing")])
    with pytest.raises(ValidationError):
        add_root(engine, "../etc", [info.store_path])
    remove_root(engine, "web-1.2")
    assert list(roots(engine)) == []
    with pytest.raises(NotFoundError):
        remove_root(engine, "web-1.2")


def test_delete_refuses_a_path_a_root_keeps_unless_forced(store: Store, tmp_path: Path) -> None:
    dep = api.import_path(store, tree(tmp_path / "dep", "d", files=1))
    engine = engine_of(store)
    add_root(engine, "r", [dep.store_path])
    with pytest.raises(ValidationError, match="kept by root 'r'"):
        delete_path(store, dep.store_path)
    delete_path(store, dep.store_path, force=True)
    assert store.pathinfo.get(dep.store_path.digest) is None
    with pytest.raises(NotFoundError):
        delete_path(store, dep.store_path)
    collect(store, grace=0)  # a root naming a deleted path is no error


def test_delete_refuses_a_path_another_path_refers_to_unless_forced(store: Store, tmp_path: Path) -> None:
    """As Nix refuses to delete a path that is still alive: closures in the store stay whole."""
    dep = api.import_path(store, tree(tmp_path / "dep", "d", files=1))
    user = api.import_path(store, tree(tmp_path / "user", "u", files=1))._replace(references=(dep.store_path,))
    store.pathinfo.put(user)
    with pytest.raises(ValidationError, match=f"still referred to by {user.store_path.absolute}"):
        delete_path(store, dep.store_path)
    assert store.pathinfo.get(dep.store_path.digest) is not None
    delete_path(store, user.store_path)
    delete_path(store, dep.store_path)
    assert store.pathinfo.get(dep.store_path.digest) is None


def test_one_gc_at_a_time(store: Store, tmp_path: Path) -> None:
    engine = engine_of(store)
    with engine.metadata.try_lock("gc"):
        with pytest.raises(BackendError, match="another garbage collection"):
            collect(store, everything=True)


def test_a_kept_delta_against_an_unkept_base_reads_back_exactly(store: Store, reopen, tmp_path: Path) -> None:
    base = binary_like(12 * 1024, seed=11)  # one chunk
    near = patched(base, 4096, seed=12)
    (tmp_path / "old").mkdir()
    (tmp_path / "old" / "f").write_bytes(base)
    (tmp_path / "new").mkdir()
    (tmp_path / "new" / "f").write_bytes(near)
    old = api.import_path(store, tmp_path / "old")
    new = api.import_path(store, tmp_path / "new")
    engine = engine_of(store)
    assert engine.chunk_record(B3Digest.of(near)).base == B3Digest.of(base)
    add_root(engine, "new", [new.store_path])
    expected = dumps(store, new)
    collect(store, grace=0)
    assert store.pathinfo.get(old.store_path.digest) is None
    with reopen() as fresh:
        assert dumps(fresh, new) == expected
        tally = Tally()
        assert list(verify_chunks(fresh, tally, None)) == [] and tally.chunks_checked


def test_sparse_packs_are_rewritten_and_a_reader_holding_an_old_location_retries(store: Store,
                                                                                  tmp_path: Path) -> None:
    engine = engine_of(store)
    with engine.batch():  # one pack for both
        kept = api.import_path(store, tree(tmp_path / "kept", "k", files=2))
        api.import_path(store, tree(tmp_path / "gone", "g", files=30))
    expected = dumps(store, kept)
    assert len(packs_of(store)) == 1
    add_root(engine, "r", [kept.store_path])
    digest = bytes(kept.node.digest)  # the root directory, a chunk
    old_record = engine.chunk_record(digest)

    report = collect(store, grace=0)

    assert report.sweep.packs_rewritten == 1 and report.sweep.packs_deleted == 1
    assert engine.chunk_record(digest).location.pack != old_record.location.pack
    [new_size] = packs_of(store).values()
    assert new_size < 300_000
    engine._reader.clear()
    assert bytes(engine._read_record(digest, old_record, 0)) == engine.read_chunk(digest)
    assert dumps(store, kept) == expected


def test_a_tombstoned_record_is_resurrected_when_a_kept_path_names_it(store: Store, tmp_path: Path) -> None:
    info = api.import_path(store, tree(tmp_path / "a", "a", files=3))
    engine = engine_of(store)
    expected = dumps(store, info)
    add_root(engine, "r", [info.store_path])
    # As if an earlier GC swept this path's records while an import that re-used them was under way:
    digest = bytes(info.node.digest)
    raw = engine.metadata.get(CHUNKS, digest)
    dead = tombstones.tombstones(CHUNKS)
    engine.metadata.commit({dead: {digest: tombstones.encode(1, raw)}}, {CHUNKS: [digest]})
    assert dumps(store, info) == expected  # read through the tombstone
    assert engine.has_chunk(digest)  # so a writer deduplicates against it
    report = collect(store, grace=3600)
    assert report.sweep.resurrected == 1
    assert engine.metadata.get(CHUNKS, digest) == raw and engine.metadata.get(dead, digest) is None


def test_an_interrupted_deletion_is_finished_by_the_next_gc(store: Store, tmp_path: Path) -> None:
    from castore.local.sweep import UNNAMED

    info = api.import_path(store, tree(tmp_path / "a", "a", files=1))
    engine = engine_of(store)
    add_root(engine, "r", [info.store_path])
    stray = "f" * 64
    engine.packs.store.put(stray, b"a pack a crashed GC put and never named")
    engine.metadata.commit({UNNAMED: {stray.encode(): b""}})
    collect(store, grace=3600)
    assert stray not in packs_of(store)
    assert list(engine.metadata.items(UNNAMED)) == []
    assert dumps(store, info)
    assert list(engine.metadata.items(RETIRED)) == []


def test_a_swept_chunk_written_again_is_never_a_delta_against_itself(store: Store, tmp_path: Path) -> None:
    """A writer stores again a chunk GC swept (its lookup skips tombstones), while the similarity
    index still names that chunk and its tombstone still reads: it must not become a delta whose
    base is itself, which no read can resolve (seen in test_gc_interop as "a delta more than 8
    deep" after GC raced an import that re-used swept chunks)."""
    data = binary_like(12 * 1024, seed=31)
    for name in ("old", "again"):
        (tmp_path / name).mkdir()
        (tmp_path / name / "f").write_bytes(data)
    api.import_path(store, tmp_path / "old")
    engine = engine_of(store)
    digest = B3Digest.of(data)
    raw = engine.metadata.get(CHUNKS, digest)
    assert ChunkRecord.decode(raw).base is None
    dead = tombstones.tombstones(CHUNKS)
    engine.metadata.commit({dead: {digest: tombstones.encode(1, raw)}}, {CHUNKS: [digest]})  # as GC sweeps
    again = api.import_path(store, tmp_path / "again")
    assert ChunkRecord.decode(engine.metadata.get(CHUNKS, digest)).base != digest
    engine._reader.clear()
    assert store.castore.blobs.read_all(digest) == data
    assert dumps(store, again)


def test_a_tombstoned_delta_kept_again_brings_back_its_tombstoned_base(store: Store, tmp_path: Path) -> None:
    base = binary_like(12 * 1024, seed=21)
    near = patched(base, 4096, seed=22)
    for name, data in (("old", base), ("new", near)):
        (tmp_path / name).mkdir()
        (tmp_path / name / "f").write_bytes(data)
    api.import_path(store, tmp_path / "old")
    new = api.import_path(store, tmp_path / "new")
    engine = engine_of(store)
    add_root(engine, "new", [new.store_path])
    expected = dumps(store, new)
    dead = tombstones.tombstones(CHUNKS)
    swept = {d: engine.metadata.get(CHUNKS, d) for d in (B3Digest.of(base), B3Digest.of(near))}
    assert ChunkRecord.decode(swept[B3Digest.of(near)]).base == B3Digest.of(base)
    engine.metadata.commit({dead: {d: tombstones.encode(1, raw) for d, raw in swept.items()}}, {CHUNKS: list(swept)})
    report = collect(store, grace=0)
    assert report.sweep.resurrected == 2
    assert all(engine.metadata.get(CHUNKS, d) == raw for d, raw in swept.items())
    assert dumps(store, new) == expected


def test_a_pack_a_dead_writer_left_unnamed_is_deleted_by_a_gc_a_grace_period_after_one_saw_it(
        store: Store, tmp_path: Path) -> None:
    info = api.import_path(store, tree(tmp_path / "a", "a", files=1))
    engine = engine_of(store)
    add_root(engine, "r", [info.store_path])
    stray = "e" * 64
    engine.packs.store.put(stray, b"a writer put this pack and died before its commit")
    assert collect(store, grace=3600).sweep.packs_deleted == 0  # first seen
    assert collect(store, grace=3600).sweep.packs_deleted == 0  # not yet a grace period ago
    assert stray in packs_of(store)
    assert collect(store, grace=0).sweep.packs_deleted == 1
    assert stray not in packs_of(store)
    assert dumps(store, info)


def test_a_swept_directory_stored_again_as_a_blob_does_not_read_as_a_directory(store: Store, tmp_path: Path) -> None:
    root = tree(tmp_path / "t", "t", files=2, size=1000)
    tree(root / "sub", "s", files=2, size=1000)
    info = api.import_path(store, root)
    directory = store.castore.directories.get(info.node.digest)
    assert directory is not None
    report = collect(store, grace=0, everything=True)
    assert report.sweep.directories == 2
    assert store.castore.directories.get(info.node.digest) is None
    # The same bytes, put later as a file's contents: a blob, whose children are long gone.
    with store.castore.blobs.open_write() as writer:
        writer.write(directory.encoded)
        assert writer.close() == info.node.digest
    assert store.castore.directories.get(info.node.digest) is None
    assert store.castore.directories.get(directory.directories[0].digest) is None


def test_a_tombstoned_directory_row_reads_and_is_put_back_when_a_kept_path_names_it(store: Store,
                                                                                    tmp_path: Path) -> None:
    from castore.directories.local import DIRECTORY_ROWS

    info = api.import_path(store, tree(tmp_path / "a", "a", files=2, size=1000))
    engine = engine_of(store)
    add_root(engine, "r", [info.store_path])
    expected = dumps(store, info)
    digest = bytes(info.node.digest)
    dead = tombstones.tombstones(DIRECTORY_ROWS)
    engine.metadata.commit({dead: {digest: tombstones.encode(1, b"")}}, {DIRECTORY_ROWS: [digest]})
    assert store.castore.directories.get(info.node.digest) is not None  # read through the tombstone
    report = collect(store, grace=0)
    assert report.sweep.resurrected == 1 and report.sweep.directories == 0
    assert engine.metadata.get(DIRECTORY_ROWS, digest) == b"" and engine.metadata.get(dead, digest) is None
    assert dumps(store, info) == expected


def test_a_rewrite_reads_a_packs_live_frames_in_few_requests(store: Store, tmp_path: Path, monkeypatch) -> None:
    """Object storage charges per request: the live frames of a sparse pack are asked for together."""
    engine = engine_of(store)
    with engine.batch():  # one pack: the kept files' frames and the dead ones between them
        kept = [api.import_path(store, tree(tmp_path / f"kept{i}", f"k{i}", files=2, size=600_000)) for i in range(4)]
        api.import_path(store, tree(tmp_path / "gone", "g", files=60, size=600_000))
    add_root(engine, "r", [info.store_path for info in kept])
    expected = [dumps(store, info) for info in kept]
    pack_store = engine.packs.store
    requests, frames = [], []
    read = pack_store.read

    def counting(name, ranges):
        requests.append(name)
        frames.extend(ranges)
        return read(name, ranges)
    monkeypatch.setattr(pack_store, "read", counting)

    report = collect(store, grace=0)

    assert report.sweep.packs_rewritten == 1
    assert len(frames) >= 3 and len(requests) == 1
    monkeypatch.undo()
    engine._reader.clear()
    assert [dumps(store, info) for info in kept] == expected
