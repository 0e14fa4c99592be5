"""The local directory backend's own behaviour: blobs that are not directories are not returned as
ones, directories are framed apart from file contents; the DirectoryService contract is in
tests/conformance/test_directoryservice.py."""

from __future__ import annotations

from pathlib import Path
from typing import Iterator

import pytest

from castore.blobs.local import LocalBlobService
from castore.digest import B3Digest
from castore.directories.local import LocalDirectoryService
from castore.local.registry import open_engine
from castore.nodes import Directory, FileNode, SymlinkNode

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
