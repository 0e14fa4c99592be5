"""The cluster's servers stopped under running replicas: a client gets a clear error (gRPC
UNAVAILABLE from a daemon, HTTP 503 with no NAR byte from a nar-bridge), and the same replicas
serve again once the server is back, without a restart of their own."""

from __future__ import annotations

import http.client
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Callable, TypeVar
from urllib.parse import urlsplit

import pytest

from castore.errors import BackendError
from store import api
from store.narinfo import NarInfo
from store.url import open_store
from tests.cluster.checks import overlapping_tree
from tests.services.cluster import Cluster, serving, store_url
from tests.services.postgres import running_postgres
from tests.services.seaweed import running_seaweedfs

T = TypeVar("T")
RECOVERY = 30.0
"""Seconds a replica may take to serve again once its server is back (pools reconnect lazily).
A request while the server is down fails after the store's own limits: 10 s waiting for a
PostgreSQL connection, 15 s of S3 retries; the daemon and the bridge are asked at once."""


def get(bridge: str, path: str) -> tuple[int, bytes]:
    where = urlsplit(bridge)
    conn = http.client.HTTPConnection(where.hostname, where.port, timeout=60)
    try:
        conn.request("GET", path)
        response = conn.getresponse()
        return response.status, response.read()
    finally:
        conn.close()


def eventually(attempt: Callable[[], T]) -> T:
    """`attempt()` once it stops failing with BackendError, within RECOVERY seconds."""
    deadline = time.monotonic() + RECOVERY
    while True:
        try:
            return attempt()
        except BackendError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)


def served_nar(bridge: str, hash_part: str) -> tuple[int, bytes]:
    status, body = get(bridge, f"/{hash_part}.narinfo")
    if status != 200:
        return status, body
    return get(bridge, "/" + NarInfo.parse(body.decode()).url)


def imported(cluster: Cluster, tree: Path) -> tuple[str, bytes]:
    """Import `tree` through the cluster's first daemon: its store path and NAR."""
    with open_store(cluster.daemons[0]) as store:
        info = api.import_path(store, tree)
        return info.store_path.absolute, b"".join(api.dump(store, info.store_path))


@pytest.mark.slow
def test_postgres_down_is_unavailable_and_its_return_is_served(seaweedfs, monkeypatch, tmp_path):
    for name, value in seaweedfs.env.items():
        monkeypatch.setenv(name, value)
    # durable: a crash (stop "immediate") must keep what was acknowledged, as in production
    with running_postgres(durable=True) as postgres, \
            serving(store_url(postgres, seaweedfs), seaweedfs.env, 1) as cluster:
        path, nar = imported(cluster, overlapping_tree(tmp_path / "tree", "pg"))
        store_path = api.parse_store_path(path)
        postgres.stop("immediate")

        with open_store(cluster.daemons[0]) as client, ThreadPoolExecutor(1) as other:
            bridge = other.submit(get, cluster.bridges[0], f"/{store_path.hash_part}.narinfo")  # meanwhile
            with pytest.raises(BackendError, match="UNAVAILABLE.*PostgreSQL"):
                client.pathinfo.get(store_path.digest)
            status, body = bridge.result()
        assert status == 503 and b"PostgreSQL" in body

        postgres.start()
        with open_store(cluster.daemons[0]) as client:
            assert eventually(lambda: b"".join(api.dump(client, store_path))) == nar
        assert eventually(lambda: _ok(served_nar(cluster.bridges[0], store_path.hash_part))) == nar


@pytest.mark.slow
def test_object_storage_down_is_unavailable_and_its_return_is_served(postgres_server, monkeypatch, tmp_path):
    with running_seaweedfs() as weed:
        for name, value in weed.env.items():
            monkeypatch.setenv(name, value)
        store = store_url(postgres_server, weed)
        with serving(store, weed.env, 1) as writer:
            path, nar = imported(writer, overlapping_tree(tmp_path / "tree", "s3"))
        store_path = api.parse_store_path(path)
        # Fresh replicas: nothing of the path's packs is in their memory.
        with serving(store, weed.env, 1) as cluster:
            status, narinfo = get(cluster.bridges[0], f"/{store_path.hash_part}.narinfo")
            assert status == 200
            weed.kill()

            with open_store(cluster.daemons[0]) as client, ThreadPoolExecutor(1) as other:
                bridge = other.submit(get, cluster.bridges[0], "/" + NarInfo.parse(narinfo.decode()).url)
                with pytest.raises(BackendError, match="UNAVAILABLE"):
                    b"".join(api.dump(client, store_path))
                status, body = bridge.result()
            assert status == 503 and not body.startswith(b"\x0d\x00\x00\x00\x00\x00\x00\x00nix-archive-1")

            weed.restart()
            with open_store(cluster.daemons[0]) as client:
                assert eventually(lambda: b"".join(api.dump(client, store_path))) == nar
            assert eventually(lambda: _ok(served_nar(cluster.bridges[0], store_path.hash_part))) == nar


def _ok(reply: tuple[int, bytes]) -> bytes:
    """The body of a 200; a 503 as the BackendError `eventually` waits out."""
    status, body = reply
    if status == 503:
        raise BackendError(body.decode(errors="replace"))
    assert status == 200, body
    return body
