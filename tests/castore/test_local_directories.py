"""The local directory backend's own behaviour: blobs that are not directories are not returned as
ones, directories are framed apart from file contents, stored directories read back exactly and
only when their bytes are their digest's; the DirectoryService contract is in
tests/conformance/test_directoryservice.py."""

from __future__ import annotations

from pathlib import Path
from typing import Iterator

import pytest

from castore import wire
from castore.blobs.local import LocalBlobService
from castore.digest import B3Digest
from castore.directories.local import LocalDirectoryService
from castore.errors import CorruptionError
from castore.local.engine import CHUNKS
from castore.local.frames import Location
from castore.local.registry import open_engine
from castore.nodes import Directory, FileNode, SymlinkNode
from tests.castore.local_store import pack_file, rewrite

FILE = B3Digest.of(b"contents")


def tree(n: int = 0) -> list[Directory]:
    """A small leaves-first closure; `n` varies the names so closures differ."""
    leaf = Directory(files=(FileNode(b"file%d" % n, FILE, 8),))
    mid = Directory(directories=(leaf.as_node(b"leaf"),), symlinks=(SymlinkNode(b"link", b"leaf/file"),))
    root = Directory.of([mid.as_node(b"mid"), leaf.as_node(b"other"), FileNode(b"x", FILE, 8, True)])
    return [leaf, mid, root]


@pytest.fixture
def store_path(tmp_path: Path) -> Path:
    return tmp_path / "store"


@pytest.fixture
def dirs(store_path: Path) -> Iterator[LocalDirectoryService]:
    service = LocalDirectoryService(open_engine(str(store_path)))
    yield service
    service.close()


def test_a_blob_that_is_not_a_directory_is_not_returned_as_one(store_path: Path,
                                                                 dirs: LocalDirectoryService) -> None:
    blobs = LocalBlobService(open_engine(str(store_path)))
    with blobs.open_write() as writer:
        writer.write(b"\xff\xff not protobuf")
        digest = writer.close()
    blobs.close()
    assert dirs.get(digest) is None


def test_a_blob_that_parses_as_a_directory_but_is_not_its_canonical_encoding_is_not_one(
        store_path: Path, dirs: LocalDirectoryService) -> None:
    leaf = tree()[0]
    blobs = LocalBlobService(open_engine(str(store_path)))
    with blobs.open_write() as writer:
        writer.write(leaf.encoded + b"\x7a\x00")  # an unknown field: protobuf would parse it
        digest = writer.close()
    blobs.close()
    assert Directory.decode(leaf.encoded + b"\x7a\x00") == leaf
    assert dirs.get(digest) is None


def test_directories_are_framed_apart_from_file_contents(store_path: Path, dirs: LocalDirectoryService) -> None:
    """Fetching a tree's directories must not decompress the small files stored beside them."""
    engine = dirs.engine
    blobs = LocalBlobService(open_engine(str(store_path)))
    with engine.batch():
        with blobs.open_write() as writer:
            writer.write(b"contents")
            blob = writer.close()
        root = dirs.put(tree())
    blobs.close()
    frame = {d: engine.chunk_record(d).location[:2] for d in (blob, root, tree()[0].digest)}
    assert frame[root] == frame[tree()[0].digest] != frame[blob]


def test_directories_read_back_field_for_field_whatever_their_shape(dirs: LocalDirectoryService) -> None:
    """Stored directories are decoded without checks (Directory.decode_stored): names and targets
    long enough for two-byte lengths, sizes at 0 and at 2**64 - 1, executables, empty children."""
    empty = Directory()
    child = Directory(files=(FileNode(b"e" * 127, FILE, 0), FileNode(b"f" * 128, FILE, 2**64 - 1, True)),
                      symlinks=(SymlinkNode(b"s" * 255, b"t" * 4095),))
    root = Directory.of([child.as_node(b"d" * 200), empty.as_node(b"empty"), FileNode(b"x", FILE, 127),
                         FileNode(b"y", FILE, 128, True), SymlinkNode(b"z", b"a")])
    dirs.put([empty, child, root])
    for directory in (empty, child, root):
        again = dirs.get(directory.digest)
        assert again == directory and again.size == directory.size and again.nodes() == directory.nodes()
    assert list(dirs.get_recursive(root.digest)) == [root, child, empty]
    assert list(dirs.get_recursive_encoded(root.digest)) == [root.encoded, child.encoded, empty.encoded]


def test_a_stored_directory_whose_bytes_are_not_its_digests_is_never_decoded(
        store_path: Path, dirs: LocalDirectoryService) -> None:
    """Stored directories are decoded without checks only because each read is verified against
    its digest: bytes put in their place (here a directory that would fail every check: '..'
    twice) are refused as corrupt, by get and by get_recursive."""
    import zstandard

    root = dirs.put(tree())
    location = dirs.engine.chunk_record(root).location
    forged = FileNode(b"..", FILE, 1).encode()
    forged = wire.length_delimited(2, forged) * 2
    frame = zstandard.ZstdCompressor(level=5).compress(forged)
    dirs.close()
    with open(pack_file(store_path, location.pack), "ab") as f:
        offset = f.tell()
        f.write(frame)
    rewrite(store_path, CHUNKS, root, Location(location.pack, offset, len(frame), 0, len(forged)).encode())
    reopened = LocalDirectoryService(open_engine(str(store_path)))
    try:
        with pytest.raises(CorruptionError, match="does not match its digest"):
            reopened.get(root)
        with pytest.raises(CorruptionError, match="does not match its digest"):
            list(reopened.get_recursive(root))
    finally:
        reopened.close()
