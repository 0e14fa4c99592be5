"""NAR -> castore: the same root as a file-system import, NarHash/NarSize, nothing put from a bad NAR."""

from __future__ import annotations

import hashlib
import io
import itertools
import random
import tracemalloc
from pathlib import Path

import pytest
from hypothesis import given, settings, strategies as st

from castore.blobs.memory import MemoryBlobService
from castore.digest import B3Digest
from castore.ingest import import_path
from castore.nodes import FileNode, SymlinkNode
from castore.url import CAStore, open_castore
from store import nixbase32
from store.errors import NarError
from store.nar.events import DIRECTORY_END, DIRECTORY_START, Entry
from store.nar.ingest import PIECE_SIZE, ingest_nar
from store.nar.render import calculate_nar, render_nar
from store.nar.wire import NAR_HEADER, regular_header, regular_trailer
from store.nar.writer import write_nar
from tests.store.castores import ROOT_KINDS, RecordingDirectories, castore, make_root, open_test_store  # noqa: F401
from tests.store.narbytes import Source, dir_node, file_node, nar
from tests.store.nixtool import interop, nix
from tests.store.test_nar_reader import trees
from tests.store.trees import File, Link, tree_events


def encode(tree) -> bytes:
    return b"".join(write_nar(tree_events(tree)))


def render(store: CAStore, node) -> bytes:
    return b"".join(render_nar(store, node))


def recording_store() -> CAStore:
    return CAStore(MemoryBlobService(), RecordingDirectories())


@interop
@pytest.mark.parametrize("kind", ROOT_KINDS)
def test_nix_store_dump_ingests_to_the_node_of_a_file_system_import(castore, tmp_path: Path, kind: str):
    """Ingests `nix-store --dump`; NarHash is `nix-hash --type sha256 --base32`, and render gives the dump back."""
    path = make_root(kind, tmp_path)
    dump = nix("nix-store", "--dump", str(path))
    result = ingest_nar(castore, io.BytesIO(dump))
    expected, _ = import_path(open_castore("memory://"), path)
    assert result.node == expected
    assert result.nar_size == len(dump)
    assert result.nar_sha256 == nixbase32.decode(nix("nix-hash", "--type", "sha256", "--base32", str(path))
                                                 .decode().strip())
    assert render(castore, result.node) == dump


def test_file_and_symlink_roots_give_leaf_nodes():
    store = recording_store()
    assert ingest_nar(store, io.BytesIO(encode(File(b"x", True)))).node == FileNode(b"", B3Digest.of(b"x"), 1, True)
    assert ingest_nar(store, io.BytesIO(encode(Link(b"t")))).node == SymlinkNode(b"", b"t")
    assert store.directories.puts == 0


GOOD = {b"a": {b"f": File(b"x" * 10)}, b"b": File(b"hello", True), b"c": Link(b"a/f"), b"d": {}}


def with_bad_padding() -> bytes:
    data = bytearray(encode(GOOD))
    data[data.index(b"hello") + 5] = 1
    return bytes(data)


MALFORMED = {
    "truncated": (encode(GOOD)[:-8], GOOD),
    "trailing data": (encode(GOOD) + bytes(8), GOOD),
    "bad padding": (with_bad_padding(), GOOD),
    "unsorted names": (nar(dir_node((b"b", file_node()), (b"a", file_node()))),
                       {b"a": File(b"x"), b"b": File(b"x")}),
}


@pytest.mark.parametrize("case", MALFORMED)
def test_a_malformed_nar_raises_and_puts_no_directory(case: str):
    data, meant = MALFORMED[case]
    would_be_root = ingest_nar(recording_store(), io.BytesIO(encode(meant))).node
    store = recording_store()
    with pytest.raises(NarError):
        ingest_nar(store, io.BytesIO(data))
    assert store.directories.puts == 0
    assert store.directories.get(would_be_root.digest) is None


def test_every_truncation_raises_and_puts_no_directory():
    data = encode(GOOD)
    store = recording_store()
    for cut in range(len(data)):
        with pytest.raises(NarError):
            ingest_nar(store, io.BytesIO(data[:cut]))
    assert store.directories.puts == 0


def test_nesting_deeper_than_the_recursion_limit_round_trips():
    depth = 3000
    events = [DIRECTORY_START, Entry(b"d")] * depth + [DIRECTORY_START] + [DIRECTORY_END] * (depth + 1)
    data = b"".join(write_nar(events))
    store = recording_store()
    assert render(store, ingest_nar(store, io.BytesIO(data)).node) == data


class GeneratedNar:
    """A one-file NAR made while it is read, so the test holds no copy of it; records the largest read."""

    def __init__(self, size: int) -> None:
        block = random.Random(size).randbytes(1 << 20)
        contents = (block[:size - offset] for offset in range(0, size, len(block)))
        self._parts = itertools.chain([NAR_HEADER + regular_header(size, False)], contents,
                                      [regular_trailer(size)])
        self._buf = b""
        self.largest = 0

    def read(self, n: int, /) -> bytes:
        self.largest = max(self.largest, n)
        while len(self._buf) < n and (part := next(self._parts, None)) is not None:
            self._buf += part
        data, self._buf = self._buf[:n], self._buf[n:]
        return data


def test_a_file_of_many_chunks_streams_through_in_bounded_memory(tmp_path: Path):
    size = 64 << 20
    source = GeneratedNar(size)
    with open_test_store("local", tmp_path) as store:
        tracemalloc.start()
        try:
            result = ingest_nar(store, source)
            peak = tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()
        assert peak < size // 4
        assert source.largest <= PIECE_SIZE
        assert len(store.blobs.stat(result.node.digest).chunks) > 1
        assert calculate_nar(store, result.node) == (result.nar_size, result.nar_sha256)


@settings(max_examples=100, deadline=None)
@given(tree=trees, step=st.sampled_from([None, 7]))
def test_random_trees_ingest_and_render_back_identically(tree, step):
    data = encode(tree)
    store = recording_store()
    result = ingest_nar(store, Source(data, step))
    assert (result.nar_size, result.nar_sha256) == (len(data), hashlib.sha256(data).digest())
    assert render(store, result.node) == data
