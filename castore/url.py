"""The one place that turns a service URL into a backend.

| URL                          | backend                                  |
|------------------------------|------------------------------------------|
| memory://                    | in-process dicts (tests)                 |
| local:///abs/dir             | the embedded store (LMDB + pack files)   |
| grpc+unix:///abs/socket      | a remote daemon over a unix socket       |
| grpc+http://host:port        | a remote daemon over TCP                 |
"""

from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass
from typing import Iterator
from urllib.parse import urlsplit

from castore.blobs.service import BlobService
from castore.directories.service import DirectoryService
from castore.errors import ValidationError

ENV_STORE = "CAIRN_STORE"


def default_store_url() -> str:
    """$CAIRN_STORE, else a local store in the user's data directory."""
    if url := os.environ.get(ENV_STORE):
        return url
    data = os.environ.get("XDG_DATA_HOME") or os.path.join(os.path.expanduser("~"), ".local", "share")
    return f"local://{os.path.join(os.path.abspath(data), 'cairn', 'store')}"


def local_path(url: str) -> str:
    """The directory of a `local:///abs/dir` URL."""
    parts = urlsplit(url)
    if parts.netloc or not parts.path.startswith("/"):
        raise ValidationError(f"local store URL needs an absolute path: {url!r} (local:///abs/dir)")
    return parts.path


def grpc_target(url: str) -> str:
    """The grpcio target for `grpc+unix:///socket` or `grpc+http://host:port`."""
    parts = urlsplit(url)
    if parts.scheme == "grpc+unix":
        if not parts.path.startswith("/") or parts.netloc:
            raise ValidationError(f"grpc+unix URL needs an absolute socket path: {url!r}")
        return f"unix://{parts.path}"
    if parts.scheme == "grpc+http":
        if not parts.hostname or not parts.port:
            raise ValidationError(f"grpc+http URL needs host:port: {url!r}")
        return parts.netloc
    raise ValidationError(f"not a gRPC URL: {url!r}")


def scheme(url: str) -> str:
    s = urlsplit(url).scheme
    if s not in ("memory", "local", "grpc+unix", "grpc+http"):
        raise ValidationError(
            f"unsupported store URL {url!r} (memory://, local:///dir, grpc+unix:///sock, grpc+http://host:port)")
    return s


def open_blob_service(url: str) -> BlobService:
    s = scheme(url)
    if s == "memory":
        from castore.blobs.memory import MemoryBlobService
        return MemoryBlobService()
    if s == "local":
        from castore.blobs.local import LocalBlobService
        from castore.local.registry import open_engine
        return LocalBlobService(open_engine(local_path(url)))
    from castore.blobs.grpc import GrpcBlobService
    return GrpcBlobService(grpc_target(url))


def open_directory_service(url: str) -> DirectoryService:
    s = scheme(url)
    if s == "memory":
        from castore.directories.memory import MemoryDirectoryService
        return MemoryDirectoryService()
    if s == "local":
        from castore.directories.local import LocalDirectoryService
        from castore.local.registry import open_engine
        return LocalDirectoryService(open_engine(local_path(url)))
    from castore.directories.grpc import GrpcDirectoryService
    return GrpcDirectoryService(grpc_target(url))


@dataclass
class CAStore:
    """A blob and a directory service used together."""

    blobs: BlobService
    directories: DirectoryService

    @contextlib.contextmanager
    def batch(self) -> Iterator[None]:
        """Group this thread's writes; they are durable when its outermost batch exits."""
        with self.blobs.batch(), self.directories.batch():
            yield

    def close(self) -> None:
        self.blobs.close()
        self.directories.close()

    def __enter__(self) -> CAStore:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def open_castore(url: str | None = None, *, blob_url: str | None = None,
                 directory_url: str | None = None) -> CAStore:
    """Open both services from one URL; the specific URLs override it."""
    url = url or default_store_url()
    return CAStore(open_blob_service(blob_url or url), open_directory_service(directory_url or url))
