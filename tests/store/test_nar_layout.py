"""The NAR layout: its offsets are where contents sit, any range of it is that slice of the whole NAR,
a range reads only the files it overlaps, and the `.ls` listing made from it is unchanged."""

from __future__ import annotations

import io
import random
from pathlib import Path

import pytest
from hypothesis import given, settings, strategies as st

from castore.blobs.memory import MemoryBlobService
from castore.digest import B3Digest
from castore.errors import NotFoundError
from castore.ingest import import_path
from castore.nodes import Directory, FileNode, SymlinkNode
from castore.url import CAStore, open_castore
from nar_bridge.closures import ClosureCache
from nar_bridge.listing import nar_listing
from nar_bridge.nar import ByteRange, nar_body
from store.nar.ingest import ingest_nar
from store.nar.layout import lay_out
from store.nar.render import render_layout, render_nar, render_range
from store.nar.writer import write_nar
from store.pathinfo.memory import MemoryPathInfoService
from store.url import Store
from tests.conftest import make_zoo
from tests.store.castores import RecordingDirectories
from tests.store.test_nar_reader import trees
from tests.store.trees import tree_events


def ingested(tree) -> tuple[CAStore, FileNode, bytes]:
    """A random tree in a memory store, with its NAR as the writer makes it."""
    data = b"".join(write_nar(tree_events(tree)))
    store = CAStore(MemoryBlobService(), RecordingDirectories())
    return store, ingest_nar(store, io.BytesIO(data)).node, data


@settings(max_examples=100, deadline=None)
@given(tree=trees, data=st.data())
def test_random_ranges_of_random_trees_are_slices_of_the_whole_nar(tree, data):
    store, node, nar = ingested(tree)
    layout = lay_out(store.directories, node)
    assert layout.size == len(nar) and b"".join(render_layout(store.blobs, layout)) == nar
    edges = [0, *layout.offsets, *(offset + file.size for offset, file in zip(layout.offsets, layout.files))]
    near_an_edge = st.sampled_from(edges).flatmap(lambda edge: st.integers(edge - 9, edge + 9))
    for _ in range(5):
        first = min(max(data.draw(st.one_of(st.integers(0, len(nar) - 1), near_an_edge)), 0), len(nar) - 1)
        end = min(max(data.draw(st.one_of(st.integers(first + 1, len(nar)), near_an_edge)), first + 1), len(nar))
        assert b"".join(render_range(store.blobs, layout, first, end)) == nar[first:end]


@settings(max_examples=100, deadline=None)
@given(tree=trees)
def test_offsets_and_framing_are_where_they_sit_in_the_nar(tree):
    store, node, nar = ingested(tree)
    layout = lay_out(store.directories, node)
    assert len(layout.framing) == len(layout.files) + 1 == len(layout.offsets) + 1
    for index, (offset, file) in enumerate(zip(layout.offsets, layout.files)):
        assert nar[offset:offset + file.size] == store.blobs.read_all(file.digest)
        start = layout.framing_start(index)
        assert nar[start:offset] == layout.framing[index]
    assert nar[layout.framing_start(len(layout.files)):] == layout.framing[-1]
    assert sum(map(len, layout.framing)) + sum(f.size for f in layout.files) == len(nar)


def test_ranges_of_chunked_blobs_in_a_local_store_are_exact(tmp_path: Path):
    """Big files are chunked in the local store: ranges start and end inside chunks and between them."""
    tree = make_zoo(tmp_path / "zoo", big=(3 << 20) + 5)
    with open_castore(f"local://{tmp_path}/store") as store:
        node, _ = import_path(store, tree)
        nar = b"".join(render_nar(store, node))
        layout = lay_out(store.directories, node)
        rnd = random.Random(11)
        for _ in range(300):
            first = rnd.randrange(len(nar))
            end = min(len(nar), first + rnd.choice([1, 7, 300, 70_000, 1 << 20, len(nar)]))
            assert b"".join(render_range(store.blobs, layout, first, end)) == nar[first:end], (first, end)


class MeteredBlobs(MemoryBlobService):
    """Counts the bytes read out of its blobs, per blob."""

    def __init__(self) -> None:
        super().__init__()
        self.bytes_read: dict[B3Digest, int] = {}

    def open_read(self, digest: B3Digest):
        reader = super().open_read(digest)
        if reader is None:
            return None
        read = reader.read

        def metered(size: int | None = -1) -> bytes:
            data = read(size)
            self.bytes_read[digest] = self.bytes_read.get(digest, 0) + len(data)
            return data

        reader.read = metered
        return reader


def test_a_range_inside_one_file_reads_that_range_only(tmp_path: Path):
    blobs = MeteredBlobs()
    store = CAStore(blobs, RecordingDirectories())
    node, _ = import_path(store, make_zoo(tmp_path / "zoo", big=(3 << 20) + 5))
    layout = lay_out(store.directories, node)
    big = max(range(len(layout.files)), key=lambda i: layout.files[i].size)
    first = layout.offsets[big] + 1_000_000
    body = b"".join(render_range(blobs, layout, first, first + 5000))
    assert body == (tmp_path / "zoo" / "big.bin").read_bytes()[1_000_000:1_005_000]
    assert blobs.bytes_read == {layout.files[big].digest: 5000}


def test_the_listing_is_byte_identical_to_the_one_served_before_the_layout(tmp_path: Path):
    """Golden output of the listing code this layout replaced (same zoo, same sizes)."""
    store = CAStore(MemoryBlobService(), RecordingDirectories())
    node, _ = import_path(store, make_zoo(tmp_path / "zoo", big=(1 << 20) + 3))
    assert nar_listing(lay_out(store.directories, node)) == ZOO_LISTING
    executable = FileNode(b"", B3Digest.of(b"x" * 20), 20, True)
    assert nar_listing(lay_out(store.directories, executable)) == (
        b'{"version":1,"root":{"type":"regular","size":20,"executable":true,"narOffset":128}}')
    link = SymlinkNode(b"", b"some/target")
    assert nar_listing(lay_out(store.directories, link)) == (
        b'{"version":1,"root":{"type":"symlink","target":"some/target"}}')


def test_a_missing_blob_anywhere_is_an_error_before_any_byte(tmp_path: Path):
    """The bridge's body, whole or ranged (even a range before the missing file), fails on its first piece."""
    store = CAStore(MemoryBlobService(), RecordingDirectories())
    node, _ = import_path(store, make_zoo(tmp_path / "zoo", big=1 << 20))
    layout = lay_out(store.directories, node)
    last = layout.files[-1]
    blobs = MemoryBlobService()
    for file in layout.files[:-1]:
        with blobs.open_write() as writer:
            writer.write(store.blobs.read_all(file.digest))
            writer.close()
    broken = CAStore(blobs, store.directories)
    for byte_range in [None, ByteRange(0, layout.size - 1), ByteRange(0, 9)]:
        body = nar_body(_store(broken), ClosureCache(), node, layout.size, byte_range, "none")
        with pytest.raises(NotFoundError, match=str(last.digest)):
            next(body)


def test_a_missing_directory_is_an_error_before_any_byte():
    store = CAStore(MemoryBlobService(), RecordingDirectories())
    absent = Directory.of([FileNode(b"f", B3Digest.of(b""), 0)]).as_node()
    with pytest.raises(NotFoundError, match=f"directory {absent.digest}"):
        next(nar_body(_store(store), ClosureCache(), absent, 128, None, "none"))


def _store(castore: CAStore) -> Store:
    return Store(castore, MemoryPathInfoService(castore))


ZOO_LISTING = (
    b'{"version":1,"root":{"type":"directory","entries":{"-leading-dash":{"type":"regular","size":5,"narOffset":240},'
    b'".hidden":{"type":"regular","size":7,"narOffset":432},"abs-link":{"type":"symlink",'
    b'"target":"/nix/store/absolute-target"},"big.bin":{"type":"regular","size":1048579,"narOffset":840},'
    b'"dangling":{"type":"symlink","target":"does/not/exist"},"dir-link":{"type":"symlink","target":"empty-dir"},'
    b'"empty-dir":{"type":"directory","entries":{}},"empty-file":{"type":"regular","size":0,"narOffset":1050192},'
    b'"latin1-\xe9":{"type":"regular","size":14,"narOffset":1050376},'
    b'"medium.bin":{"type":"regular","size":300000,"narOffset":1050584},'
    b'"nested":{"type":"directory","entries":{"a":{"type":"regular","size":100,"narOffset":1350904},'
    b'"deeper":{"type":"directory","entries":{"deepest":{"type":"directory","entries":{"leaf.txt":'
    b'{"type":"regular","size":5,"narOffset":1351464}}}}}}},'
    b'"odd name with spaces & \'quotes\'":{"type":"regular","size":4,"narOffset":1351776},'
    b'"one-byte":{"type":"regular","size":1,"narOffset":1351968},"rel-link":{"type":"symlink","target":"nested/a"},'
    b'"script.sh":{"type":"regular","size":18,"executable":true,"narOffset":1352392},'
    b'"\xc3\xbcn\xc3\xafc\xc3\xb6d\xc3\xa9 \xc3\xb1ame":{"type":"regular","size":8,"narOffset":1352616}}}}'
)
