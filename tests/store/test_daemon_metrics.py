"""`cairn daemon --metrics HOST:PORT` after real gRPC calls: calls by method and status code, the
store's figures, and a log line per failed call (`--log-format json`)."""

from __future__ import annotations

import json
import subprocess
import urllib.request

import pytest

from castore.digest import B3Digest
from castore.errors import BackendError
from store import api
from store.url import open_store
from tests.nar_bridge.conftest import free_port
from tests.scrape import Scrape
from tests.services.daemon import CAIRN, Daemon

BLOB_PUT = "/tvix.castore.v1.BlobService/Put"
PUT_MANY = "/cairn.castore.v1.BlobBatchService/PutMany"
BLOB_STAT = "/tvix.castore.v1.BlobService/Stat"
PATHINFO_PUT = "/tvix.store.v1.PathInfoService/Put"
PATHINFO_GET = "/tvix.store.v1.PathInfoService/Get"


def scrape(port: int) -> Scrape:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=30) as response:
        return Scrape(response.read().decode())


def test_daemon_metrics_count_real_grpc_calls_and_failed_calls_are_logged(tmp_path, short_dir, zoo):
    port = free_port()
    daemon = Daemon(f"local://{tmp_path}/store", short_dir / "d.sock", "--metrics", f"127.0.0.1:{port}",
                    "--log-format", "json").start()
    try:
        with open_store(daemon.url) as client:
            info = api.import_path(client, zoo)
            assert client.pathinfo.get(bytes(20)) is None
            assert client.castore.blobs.stat(B3Digest.of(b"nobody has this")) is None
        counted = scrape(port)
    finally:
        daemon.stop()

    assert counted.value("cairn_grpc_calls_total", method=PUT_MANY, code="OK") == 1  # the import's one stream
    assert counted.value("cairn_grpc_calls_total", method=PATHINFO_PUT, code="OK") == 1
    assert counted.value("cairn_grpc_calls_total", method=PATHINFO_GET, code="NOT_FOUND") == 1
    assert counted.value("cairn_grpc_calls_total", method=BLOB_STAT, code="NOT_FOUND") >= 1
    assert counted.value("cairn_grpc_call_duration_seconds_count", method=PUT_MANY) == \
        counted.value("cairn_grpc_calls_total", method=PUT_MANY)
    assert counted.value("cairn_store_paths") == 1
    assert counted.value("cairn_store_nar_bytes") == info.nar_size
    assert counted.value("cairn_store_logical_bytes") > 0
    assert counted.value("cairn_gc_runs_total") == 0

    records = [json.loads(line) for line in daemon.log_text().splitlines()]
    failed = [r for r in records if r["logger"] == "cairn.grpc"]
    assert {(r["method"], r["code"]) for r in failed} >= {(PATHINFO_GET, "NOT_FOUND"), (BLOB_STAT, "NOT_FOUND")}
    assert all(r["durationMs"] >= 0 for r in failed)
    assert not any(r["logger"] == "cairn.grpc" and r["code"] == "OK" for r in records)


def test_a_bad_metrics_address_is_one_line_and_exit_1(tmp_path, short_dir):
    done = subprocess.run([CAIRN, "daemon", "--listen", f"grpc+unix://{short_dir}/d.sock", "--store",
                           f"local://{tmp_path}/store", "--metrics", "no-port"], capture_output=True, text=True)
    assert done.returncode == 1
    assert done.stderr == "cairn: error: --metrics wants HOST:PORT, got 'no-port'\n"


def test_calls_refused_by_access_control_are_counted_and_logged(tmp_path, short_dir, monkeypatch):
    port = free_port()
    (tmp_path / "token").write_text("s3cret\n")
    monkeypatch.delenv("CAIRN_TOKEN", raising=False)
    daemon = Daemon(f"local://{tmp_path}/store", short_dir / "d.sock", "--metrics", f"127.0.0.1:{port}",
                    "--token-file", str(tmp_path / "token")).start()
    try:
        with open_store(daemon.url) as client:
            writer = client.castore.blobs.open_write()
            writer.write(b"no token")
            with pytest.raises(BackendError, match="UNAUTHENTICATED"):
                writer.close()
        counted = scrape(port)
    finally:
        daemon.stop()
    assert counted.value("cairn_grpc_calls_total", method=BLOB_PUT, code="UNAUTHENTICATED") == 1
    assert f"cairn.grpc: {BLOB_PUT} UNAUTHENTICATED" in daemon.log_text()
