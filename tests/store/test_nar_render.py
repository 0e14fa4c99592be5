"""castore -> NAR: byte-identical to `nix-store --dump`, hashed like `nix-hash`, missing data named."""

from __future__ import annotations

import hashlib
import io
import os
import re
import threading
from pathlib import Path
from typing import Iterator

import pytest

from castore.blobs.memory import MemoryBlobService
from castore.digest import B3Digest
from castore.errors import NotFoundError
from castore.ingest import import_path
from castore.nodes import Directory, DirectoryNode, FileNode
from castore.url import CAStore, open_castore
from store import nixbase32
from store.errors import NarError
from store.nar.events import DIRECTORY_END, DIRECTORY_START, Entry, RegularFile, Symlink
from store.nar.reader import read_nar
from store.nar.layout import lay_out
from store.nar.render import calculate_nar, render_layout, render_nar
from tests.store.castores import ROOT_KINDS, RecordingDirectories, castore, make_root  # noqa: F401
from tests.store.nixtool import interop, nix


def render(store: CAStore, node) -> bytes:
    return b"".join(render_nar(store, node))


@interop
@pytest.mark.parametrize("kind", ROOT_KINDS)
def test_render_is_byte_identical_to_nix_store_dump(castore, tmp_path: Path, kind: str):
    """Compares with `nix-store --dump` of the imported tree, for every kind of root."""
    path = make_root(kind, tmp_path)
    node, _ = import_path(castore, path)
    assert render(castore, node) == nix("nix-store", "--dump", str(path))


@interop
def test_long_names_and_targets_render_as_nix_store_dumps_them(castore, tmp_path: Path):
    """Lengths past 127 bytes (two-byte varints in a stored directory, more than one word of
    padding in the NAR): the layout's arithmetic and the framing agree with `nix-store --dump`."""
    root = tmp_path / "long"
    (root / ("d" * 200) / "e").mkdir(parents=True)
    (root / ("n" * 255)).write_bytes(b"x" * 200)
    (root / ("d" * 200) / ("f" * 128)).write_bytes(b"")
    (root / ("x" * 127)).write_bytes(b"y" * 130)
    os.chmod(root / ("x" * 127), 0o755)
    os.symlink("t" * 1000, root / ("s" * 129))
    node, _ = import_path(castore, root)
    layout = lay_out(castore.directories, node)
    expected = nix("nix-store", "--dump", str(root))
    assert render(castore, node) == expected and layout.size == len(expected)
    assert b"".join(layout.framing) == b"".join(expected[start:offset] for start, offset in zip(
        (layout.framing_start(i) for i in range(len(layout.framing))), (*layout.offsets, len(expected))))


@interop
def test_calculate_nar_equals_nix_hash_and_the_dump_size(castore, zoo: Path):
    """Compares NarHash with `nix-hash --type sha256 --base32` and NarSize with the dump's length."""
    node, _ = import_path(castore, zoo)
    size, sha256 = calculate_nar(castore, node)
    assert size == len(nix("nix-store", "--dump", str(zoo)))
    assert nixbase32.encode(sha256) == nix("nix-hash", "--type", "sha256", "--base32", str(zoo)).decode().strip()


def test_entries_are_rendered_in_name_order_across_kinds(tmp_path: Path):
    store = CAStore(MemoryBlobService(), RecordingDirectories())
    root = tmp_path / "root"
    (root / "b-dir").mkdir(parents=True)
    (root / "a-file").write_bytes(b"a")
    (root / "c-link").symlink_to("a-file")
    node, _ = import_path(store, root)
    events = list(read_nar(io.BytesIO(render(store, node))))
    assert [type(e) for e in events] == [type(DIRECTORY_START), Entry, RegularFile, Entry, type(DIRECTORY_START),
                                         type(DIRECTORY_END), Entry, Symlink, type(DIRECTORY_END)]
    assert [e.name for e in events if isinstance(e, Entry)] == [b"a-file", b"b-dir", b"c-link"]


def test_calculate_nar_hashes_what_render_produces(zoo: Path):
    store = CAStore(MemoryBlobService(), RecordingDirectories())
    node, _ = import_path(store, zoo)
    data = render(store, node)
    assert calculate_nar(store, node) == (len(data), hashlib.sha256(data).digest())


def test_the_closure_is_fetched_once_by_one_recursive_get(zoo: Path):
    directories = RecordingDirectories()
    store = CAStore(MemoryBlobService(), directories)
    node, _ = import_path(store, zoo)
    render(store, node)
    assert directories.recursive_gets == 1
    assert sorted(directories.gets) == sorted(d.digest for d in directories.get_recursive(node.digest))


class ShallowDirectories(RecordingDirectories):
    """A service whose recursive get stops at the root, as a lazy remote might."""

    def get_recursive(self, digest: B3Digest) -> Iterator[Directory]:
        return iter([d for d in [self.get(digest)] if d is not None])


def test_directories_a_recursive_get_left_out_are_fetched_one_by_one(zoo: Path):
    full = CAStore(MemoryBlobService(), RecordingDirectories())
    shallow = CAStore(MemoryBlobService(), ShallowDirectories())
    node, _ = import_path(full, zoo)
    assert import_path(shallow, zoo)[0] == node
    assert render(shallow, node) == render(full, node)


def test_a_missing_blob_is_named(zoo: Path):
    store = CAStore(MemoryBlobService(), RecordingDirectories())
    node, _ = import_path(store, zoo)
    without_blobs = CAStore(MemoryBlobService(), store.directories)
    leaf = store.directories.get(node.digest).files[0]
    with pytest.raises(NotFoundError, match=re.escape(f"blob {leaf.digest}")):
        render(without_blobs, node)


def test_a_missing_directory_is_named():
    store = CAStore(MemoryBlobService(), RecordingDirectories())
    absent = Directory.of([DirectoryNode(b"child", B3Digest.of(b"nothing"), 0)]).as_node()
    with pytest.raises(NotFoundError, match=re.escape(f"directory {absent.digest}")):
        render(store, absent)


@pytest.mark.parametrize("declared, why", [(5, "shorter"), (2, "longer")])
def test_a_blob_whose_size_is_not_its_nodes_is_refused(declared: int, why: str):
    store = CAStore(MemoryBlobService(), RecordingDirectories())
    with store.blobs.open_write() as writer:
        writer.write(b"abc")
        digest = writer.close()
    root = Directory.of([FileNode(b"f", digest, declared)])
    store.directories.put([root])
    with pytest.raises(NarError, match=why):
        render(store, root.as_node())


def test_a_render_closed_early_leaves_the_store_usable_and_closable(tmp_path: Path, zoo: Path):
    with open_castore(f"local://{tmp_path}/store") as store:
        node, _ = import_path(store, zoo)
        first = render(store, node)
        pieces = render_nar(store, node)
        next(pieces)
        pieces.close()
        assert render(store, node) == first
    assert [t for t in threading.enumerate() if t.name.startswith("cairn-read")] == []


@pytest.mark.parametrize("flush", [1 << 16, 1 << 20])
def test_pieces_gather_to_about_the_flush_size_within_a_file_too(tmp_path: Path, flush: int):
    """A large file's chunks are gathered into pieces of about `flush` bytes, never the whole file
    at once (memory stays bounded whatever the file's size); the pieces are still the NAR."""
    (tmp_path / "tree").mkdir()
    (tmp_path / "tree" / "large").write_bytes(hashlib.shake_256(b"large").digest(6 << 20))
    store = open_castore(f"local://{tmp_path}/store")
    try:
        node, _ = import_path(store, tmp_path / "tree")
        pieces = list(render_layout(store.blobs, lay_out(store.directories, node), flush))
        assert b"".join(pieces) == b"".join(render_nar(store, node))
        assert len(pieces) > 3 and max(len(p) for p in pieces) < flush + (256 << 10)
    finally:
        store.close()
