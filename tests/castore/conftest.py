"""Fixtures for the gRPC tests: a real server (unix socket or loopback TCP) over a backend."""

from __future__ import annotations

import itertools
import socket
from pathlib import Path
from typing import Iterator

import pytest

from castore.blobs.memory import MemoryBlobService
from castore.blobs.service import BlobStat, ChunkMeta
from castore.digest import B3Digest
from castore.directories.memory import MemoryDirectoryService
from castore.grpc_serve import RunningServer, serve
from castore.grpc_server import castore_services
from castore.url import CAStore, open_castore

TRANSPORTS = ["unix", "tcp"]
BACKENDS = ["memory", "chunked", "local"]


class ChunkedMemoryBlobService(MemoryBlobService):
    """Memory blobs that also keep a chunk list of uneven pieces.

    It exercises chunk lists and chunk reads even where the local engine is not built.
    """

    PIECES = (200_000, 300_001, 77_777)

    def __init__(self) -> None:
        super().__init__()
        self._chunk_lists: dict[bytes, tuple[ChunkMeta, ...]] = {}

    def _put(self, digest: bytes, data: bytes) -> None:
        super()._put(digest, data)
        if len(data) <= max(self.PIECES):
            return
        chunks, offset = [], 0
        for size in itertools.cycle(self.PIECES):
            if offset >= len(data):
                break
            piece = data[offset:offset + size]
            super()._put(bytes(B3Digest.of(piece)), piece)
            chunks.append(ChunkMeta(B3Digest.of(piece), len(piece)))
            offset += len(piece)
        self._chunk_lists[digest] = tuple(chunks)

    def stat(self, digest: B3Digest) -> BlobStat | None:
        found = super().stat(digest)
        return found and BlobStat(found.size, self._chunk_lists.get(bytes(digest), ()))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def listen_url(transport: str, short_dir: Path) -> str:
    if transport == "unix":
        return f"grpc+unix://{short_dir}/castore.sock"
    return f"grpc+http://127.0.0.1:{free_port()}"


@pytest.fixture(params=BACKENDS)
def backend(request, tmp_path: Path) -> Iterator[CAStore]:
    """The store the server serves (the local one once it exists)."""
    if request.param == "chunked":
        store = CAStore(ChunkedMemoryBlobService(), MemoryDirectoryService())
    elif request.param == "local":
        pytest.importorskip("castore.blobs.local")
        store = open_castore(f"local://{tmp_path}/store")
    else:
        store = open_castore("memory://")
    with store:
        yield store


@pytest.fixture(params=TRANSPORTS)
def server(request, backend: CAStore, short_dir: Path) -> Iterator[RunningServer]:
    running = serve(listen_url(request.param, short_dir),
                    [castore_services(backend.blobs, backend.directories)])
    yield running
    running.stop(grace=None)


@pytest.fixture
def remote(server: RunningServer) -> Iterator[CAStore]:
    """Clients of the served store, opened by URL like any user would."""
    with open_castore(server.url) as store:
        yield store
