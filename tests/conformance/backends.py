"""Every backend the conformance suites run against, in one table.

An entry's `open` takes a fresh directory and yields an open `Store` (blobs, directories and
path infos together: a PathInfoService calculates NARs from the castore it is composed with).
Opened again on the same directory, a durable backend finds what was written before. The next
backend (PostgreSQL + S3) or a combinator (a near/far cache over two entries) is one more entry.
"""

from __future__ import annotations

import contextlib
import shutil
import socket
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, ContextManager, Iterator

from castore.grpc_serve import serve
from castore.grpc_server import castore_services
from store.grpc_server import pathinfo_services
from store.url import Store, open_store

Factory = Callable[[Path], ContextManager[Store]]


@dataclass(frozen=True)
class Backend:
    open: Factory
    """Called with the directory and, by name, the value of each fixture in `needs`."""
    needs: tuple[str, ...] = ()
    """Fixtures the backend's servers come from (a real PostgreSQL, a real S3 server)."""
    durable: bool = False
    """What was acknowledged is still there when the store is opened again on the directory."""
    keeps_narinfo_extras: bool = True
    """PathInfo.extras come back from get() (gRPC's PathInfo message has no place for them)."""


def memory(_: Path) -> ContextManager[Store]:
    return open_store("memory://")


def local(root: Path) -> ContextManager[Store]:
    return open_store(f"local://{root}/store")


def served(inner: Factory, transport: str = "unix") -> Factory:
    """`inner`'s store behind a real gRPC server (the daemon's servicers), opened by its URL."""
    @contextlib.contextmanager
    def open_served(root: Path) -> Iterator[Store]:
        # A short directory of its own: a unix socket path must fit in 108 bytes.
        socket_dir = Path(tempfile.mkdtemp(prefix="cairn-", dir="/tmp"))
        try:
            with inner(root) as backend:
                server = serve(_listen_url(transport, socket_dir),
                               [castore_services(backend.castore.blobs, backend.castore.directories),
                                pathinfo_services(backend.pathinfo, backend.castore)])
                try:
                    with open_store(server.url) as client:
                        yield client
                finally:
                    server.stop(grace=None)
        finally:
            shutil.rmtree(socket_dir, ignore_errors=True)
    return open_served


def cached(near: str, far: str) -> Factory:
    """A near/far `cache` of every service, composed by a config file; `{root}` in a URL is the
    directory. Writes go to far, so it is as durable as far."""
    def open_cached(root: Path) -> ContextManager[Store]:
        config = root / "cache.toml"
        config.write_text("".join(
            f'[{kind}.root]\ntype = "cache"\nnear = "near"\nfar = "far"\n'
            f'[{kind}.near]\nurl = "{near.format(root=root)}"\n[{kind}.far]\nurl = "{far.format(root=root)}"\n'
            for kind in ("blobservices", "directoryservices", "pathinfoservices")))
        return open_store(config=str(config))
    return open_cached


def on_postgres(packs: str) -> Callable[..., ContextManager[Store]]:
    """Records in a PostgreSQL database of the directory's own (the same one when it is opened
    again), packs at `packs` (`{root}` is the directory, `{s3}` the test's S3 prefix)."""
    databases: dict[Path, str] = {}

    def open_postgres(root: Path, postgres_server, s3_url: str = "") -> ContextManager[Store]:
        url = databases.get(root) or databases.setdefault(root, postgres_server.create_database())
        return open_store(f"{url}&packs={packs.format(root=root, s3=s3_url)}")
    return open_postgres


def local_s3(root: Path, s3_url: str) -> ContextManager[Store]:
    """LMDB records here, packs in object storage (one machine, data off-box)."""
    return open_store(f"local://{root}/store?packs={s3_url}")


def _listen_url(transport: str, socket_dir: Path) -> str:
    if transport == "unix":
        return f"grpc+unix://{socket_dir}/store.sock"
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return f"grpc+http://127.0.0.1:{s.getsockname()[1]}"


BACKENDS: dict[str, Backend] = {
    "memory": Backend(memory),
    "local": Backend(local, durable=True),
    "grpc-local": Backend(served(local), durable=True, keeps_narinfo_extras=False),
    "grpc-memory": Backend(served(memory), keeps_narinfo_extras=False),
    "grpc-tcp-memory": Backend(served(memory, "tcp"), keeps_narinfo_extras=False),
    "cache-memory-local": Backend(cached("memory://", "local://{root}/far"), durable=True),
    "cache-local-local": Backend(cached("local://{root}/near", "local://{root}/far"), durable=True),
    "postgres-files": Backend(on_postgres("file://{root}/packs"), needs=("postgres_server",), durable=True),
    "postgres-s3": Backend(on_postgres("{s3}"), needs=("postgres_server", "s3_url"), durable=True),
    "local-s3": Backend(local_s3, needs=("s3_url",), durable=True),
    "postgres-s3-cached": Backend(on_postgres("{s3}&packs-cache={root}/cache&packs-cache-bytes=4000000"),
                                  needs=("postgres_server", "s3_url"), durable=True),
}
