"""castore's service URLs and the CAStore pair; castore.composition builds services from them.

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
from typing import TYPE_CHECKING, Iterator
from urllib.parse import urlsplit

from castore.blobs.service import BlobService
from castore.directories.service import DirectoryService
from castore.errors import ValidationError

if TYPE_CHECKING:
    from castore.composition import Composition

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


@dataclass
class CAStore:
    """A blob and a directory service used together."""

    blobs: BlobService
    directories: DirectoryService
    composition: Composition | None = None
    """What built the services, and closes them; None: close() closes the two itself."""

    @contextlib.contextmanager
    def batch(self) -> Iterator[None]:
        """Group this thread's writes; they are durable when its outermost batch exits."""
        with self.blobs.batch(), self.directories.batch():
            yield

    def close(self) -> None:
        if self.composition is not None:
            self.composition.close()
        else:
            self.blobs.close()
            self.directories.close()

    def __enter__(self) -> CAStore:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def open_castore(url: str | None = None, *, blob_url: str | None = None, directory_url: str | None = None,
                 config: str | None = None) -> CAStore:
    """Both services from one URL, or the roots of a composition file; the specific URLs override."""
    from castore.composition import BLOBS, DIRECTORIES, Composition, compose

    comp = Composition(compose(config, store=url, overrides={BLOBS: blob_url, DIRECTORIES: directory_url}))
    try:
        return CAStore(comp.get(BLOBS), comp.get(DIRECTORIES), comp)
    except BaseException:
        comp.close()
        raise
