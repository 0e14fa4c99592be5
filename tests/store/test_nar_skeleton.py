"""NAR skeletons: what rendering a whole NAR needs, kept per root by the embedded store. One made
from a layout renders the same NAR and names the same files; its record reads back exactly, a
damaged one is made again, and garbage collection drops those of roots nobody keeps."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given, settings

from castore.errors import NotFoundError
from store import api
from store.gc.collect import collect
from store.gc.engine import engine_of
from store.nar import skeleton as skeleton_module
from store.nar.layout import lay_out
from store.nar.render import render_layout
from store.nar.skeleton import NarSkeleton
from store.pathinfo.local import NARSKELETON
from store.url import Store, open_store
from tests.conftest import make_zoo
from tests.store.test_nar_layout import ingested
from tests.store.test_nar_reader import trees


@settings(max_examples=100, deadline=None)
@given(tree=trees)
def test_a_skeleton_and_its_record_render_the_layouts_nar_and_name_its_files(tree):
    store, node, nar = ingested(tree)
    layout = lay_out(store.directories, node)
    skeleton = NarSkeleton.of(layout)
    decoded = NarSkeleton.decode(skeleton.encode())
    assert decoded is not None
    for made in (skeleton, decoded):
        assert made.size == len(nar) and b"".join(render_layout(store.blobs, made)) == nar
        assert list(made.framing) == list(layout.framing) and list(made.sizes) == layout.sizes
        assert list(made.digests) == layout.digests
        assert [made.file_name(i) for i in range(len(made.digests))] == [f.name for f in layout.files]


def test_a_damaged_truncated_or_other_version_record_decodes_to_none(zoo: Path, tmp_path: Path):
    with open_store(f"local://{tmp_path}/store") as store:
        info = api.import_path(store, zoo)
        encoded = NarSkeleton.of(lay_out(store.castore.directories, info.node)).encode()
    flipped = bytearray(encoded)
    flipped[len(flipped) // 2] ^= 0x40
    assert NarSkeleton.decode(bytes(flipped)) is None
    assert NarSkeleton.decode(encoded[:-9]) is None
    assert NarSkeleton.decode(b"") is None
    import zstandard

    payload = zstandard.ZstdDecompressor().decompress(encoded)
    other = zstandard.ZstdCompressor(write_checksum=True).compress(bytes([2]) + payload[1:])
    assert NarSkeleton.decode(other) is None
    lying = zstandard.ZstdCompressor(write_checksum=True).compress(payload[:1] + (1).to_bytes(8, "little") + payload[9:])
    assert NarSkeleton.decode(lying) is None  # a size the framing and files do not add up to


def _record(store: Store, info) -> bytes | None:
    return engine_of(store).records.get(NARSKELETON, bytes(info.node.digest))


def test_the_first_dump_keeps_the_skeleton_and_the_next_reads_it_without_walking(zoo: Path, tmp_path: Path,
                                                                                   monkeypatch):
    with open_store(f"local://{tmp_path}/store") as store:
        info = api.import_path(store, zoo)
        assert _record(store, info) is None
        nar = b"".join(api.dump(store, info.store_path))
        assert _record(store, info) is not None

    def walked(*_):
        raise AssertionError("the tree was walked")

    monkeypatch.setattr("store.nar.layout.lay_out", walked)
    with open_store(f"local://{tmp_path}/store") as store:
        assert b"".join(api.dump(store, info.store_path)) == nar
        monkeypatch.undo()
        nested = _below(store, info, "nested")  # a directory below a root is a root of its own
        expected = b"".join(render_layout(store.castore.blobs, lay_out(store.castore.directories, nested)))
        assert b"".join(api.dump(store, info.store_path, "nested")) == expected
        assert engine_of(store).records.get(NARSKELETON, bytes(nested.digest)) is not None


def _below(store: Store, info, name: str):
    directory = store.castore.directories.get(info.node.digest)
    return next(n for n in directory.nodes() if n.name == name.encode())


def test_a_damaged_record_is_made_again_and_replaced(zoo: Path, tmp_path: Path):
    with open_store(f"local://{tmp_path}/store") as store:
        info = api.import_path(store, zoo)
        nar = b"".join(api.dump(store, info.store_path))
        good = _record(store, info)
        engine_of(store).records.put(NARSKELETON, [(bytes(info.node.digest), good[:-3] + b"xyz")])
        assert b"".join(api.dump(store, info.store_path)) == nar
        assert _record(store, info) == good


def test_a_record_that_cannot_be_written_does_not_fail_the_dump(zoo: Path, tmp_path: Path, monkeypatch):
    """A full disk fails writes, not reads: the dump goes on without keeping its skeleton."""
    from castore.errors import BackendError

    with open_store(f"local://{tmp_path}/store") as store:
        info = api.import_path(store, zoo)
        expected = b"".join(render_layout(store.castore.blobs, lay_out(store.castore.directories, info.node)))

        def full(*_):
            raise BackendError("No space left on device")

        monkeypatch.setattr(engine_of(store).records, "put", full)
        assert b"".join(api.dump(store, info.store_path)) == expected
        monkeypatch.undo()
        assert _record(store, info) is None


def test_a_root_wider_than_max_files_is_laid_out_each_time(zoo: Path, tmp_path: Path, monkeypatch):
    monkeypatch.setattr(skeleton_module, "MAX_FILES", 2)
    with open_store(f"local://{tmp_path}/store") as store:
        info = api.import_path(store, zoo)
        nar = b"".join(api.dump(store, info.store_path))
        assert _record(store, info) is None
        assert nar == b"".join(api.dump(store, info.store_path))


def test_a_missing_directory_is_still_not_found_before_a_record_exists(zoo: Path, tmp_path: Path):
    with open_store(f"local://{tmp_path}/store") as store:
        info = api.import_path(store, zoo)
        with pytest.raises(NotFoundError):
            store.pathinfo.nar_skeleton(store.castore.directories,
                                        type(info.node)(b"", bytes(32), info.node.size))


def test_gc_drops_the_skeletons_of_roots_nobody_keeps(tmp_path: Path):
    with open_store(f"local://{tmp_path}/store") as store:
        kept = api.import_path(store, make_zoo(tmp_path / "kept"))
        gone = api.import_path(store, make_zoo(tmp_path / "gone", big=70_000))
        for info in (kept, gone):
            b"".join(api.dump(store, info.store_path))
        from store.gc.roots import add_root

        add_root(engine_of(store), "mine", [kept.store_path])
        collect(store, grace=0)
        assert _record(store, kept) is not None and _record(store, gone) is None
