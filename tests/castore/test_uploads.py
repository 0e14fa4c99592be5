"""Small blobs in flight together over gRPC: confirmed before any directory names them."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from castore.blobs.memory import MemoryBlobService
from castore.blobs.service import BlobWriter
from castore.digest import B3Digest
from castore.directories.memory import MemoryDirectoryService
from castore.errors import CastoreError, ValidationError
from castore.export import export_node
from castore.grpc_serve import serve
from castore.grpc_server import castore_services
from castore.ingest import import_path
from castore.uploads import Uploads
from castore.url import CAStore, open_castore


class RefusingBlobs(MemoryBlobService):
    """A backend that refuses the blob b"refused" (as a full disk would refuse a write)."""

    def open_write(self) -> BlobWriter:
        return _RefusingWriter(super().open_write())


class _RefusingWriter(BlobWriter):
    def __init__(self, inner: BlobWriter) -> None:
        self._inner = inner
        self._data = bytearray()

    def write(self, data) -> int:
        self._data += data
        return self._inner.write(data)

    def close(self) -> B3Digest:
        if self._data == b"refused":
            raise ValidationError("refused")
        return self._inner.close()


class CountingDirectories(MemoryDirectoryService):
    def __init__(self) -> None:
        super().__init__()
        self.puts = 0

    def put(self, directories) -> B3Digest:
        self.puts += 1
        return super().put(directories)


def tree(root: Path, files: int) -> Path:
    for i in range(files):
        (root / f"d{i % 7}").mkdir(parents=True, exist_ok=True)
        (root / f"d{i % 7}" / f"f{i}").write_bytes(f"file {i}\n".encode() * (i % 50))
    return root


@pytest.fixture
def served(short_dir: Path):
    backend = CAStore(RefusingBlobs(), CountingDirectories())
    running = serve(f"grpc+unix://{short_dir}/castore.sock", [castore_services(backend.blobs, backend.directories)])
    try:
        with open_castore(running.url) as client:
            yield backend, client
    finally:
        running.stop(grace=None)


def test_a_tree_goes_up_with_many_puts_in_flight_and_comes_back_whole(served, tmp_path: Path) -> None:
    backend, client = served
    source = tree(tmp_path / "src", 300)
    node, _ = import_path(client, source)
    export_node(backend, node, tmp_path / "copy")
    for original in source.rglob("*"):
        copy = tmp_path / "copy" / original.relative_to(source)
        assert copy.is_dir() if original.is_dir() else copy.read_bytes() == original.read_bytes()


def test_a_refused_blob_fails_the_import_before_any_directory_is_put(served, tmp_path: Path) -> None:
    backend, client = served
    source = tree(tmp_path / "src", 100)
    (source / "d3" / "bad").write_bytes(b"refused")
    with pytest.raises(CastoreError, match="refused"):
        import_path(client, source)
    assert backend.directories.puts == 0


def test_a_local_backend_writes_in_place(tmp_path: Path) -> None:
    with open_castore(f"local://{tmp_path}/store") as store, Uploads(store.blobs) as uploads:
        digest = uploads.put(b"in place")
        assert store.blobs.has(digest)  # written before put() returned: no thread, nothing to wait for
    assert not [t for t in threading.enumerate() if t.name.startswith("cairn-upload")]
