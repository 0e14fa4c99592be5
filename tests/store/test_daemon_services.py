"""What `cairn daemon` serves besides the data services, and its command line: malformed requests
(issue 14, defect 9), the standard health service and server reflection (issue 16, with the
libraries' own clients), and the access options end to end."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from pathlib import Path
from typing import Iterator

import grpc
import pytest
from google.protobuf.descriptor_pool import DescriptorPool
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha.proto_reflection_descriptor_database import ProtoReflectionDescriptorDatabase

from castore.errors import BackendError
from castore.grpc_serve import RunningServer, serve
from castore.grpc_server import CASTORE_SERVICES, served_names
from store.grpc_server import PATHINFO_SERVICE, daemon_services
from store.url import Store, open_store
from tests.castore.test_grpc_server import _lines_until

SERVICES = [name for service in (*CASTORE_SERVICES, PATHINFO_SERVICE) for name in served_names(service)]
METHODS = [(service, method) for service in (*CASTORE_SERVICES, PATHINFO_SERVICE) for method in service.methods]


@pytest.fixture
def daemon(tmp_path: Path, short_dir: Path) -> Iterator[tuple[Store, RunningServer]]:
    backend = open_store(f"local://{tmp_path}/store")
    server = serve(f"grpc+unix://{short_dir}/d.sock", daemon_services(backend))
    try:
        yield backend, server
    finally:
        server.stop(grace=None)
        backend.close()


@pytest.mark.parametrize("garbage", [b"\xff\xff\xff\xff", b"\x0a\x05ab"], ids=["bad varint", "truncated field"])
@pytest.mark.parametrize("prefix", ["tvix", "snix"])
@pytest.mark.parametrize("service, method", METHODS, ids=[f"{s.name}.{m.name}" for s, m in METHODS])
def test_malformed_protobuf_is_invalid_argument(daemon, service, method, prefix: str, garbage: bytes) -> None:
    _, server = daemon
    name = f"/{prefix}{service.full_name[len('tvix'):]}/{method.name}"
    kind = {(False, False): "unary_unary", (False, True): "unary_stream",
            (True, False): "stream_unary", (True, True): "stream_stream"}[(method.client_streaming,
                                                                          method.server_streaming)]
    with grpc.insecure_channel(f"unix://{server.socket_path}") as channel:
        call = getattr(channel, kind)(name)  # no serializers: the bytes go as they are
        request = iter([garbage]) if method.client_streaming else garbage
        with pytest.raises(grpc.RpcError) as e:
            answer = call(request)
            if method.server_streaming:
                list(answer)
    assert e.value.code() == grpc.StatusCode.INVALID_ARGUMENT, e.value.details()
    assert "malformed" in e.value.details()


def check(channel: grpc.Channel, service: str = "") -> health_pb2.HealthCheckResponse.ServingStatus:
    return health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(service=service)).status


def test_health_follows_the_store(daemon, monkeypatch) -> None:
    """What grpc_health_probe asks; NOT_SERVING while the store fails (a failing metadata read,
    injected), SERVING again once it answers."""
    backend, server = daemon
    with grpc.insecure_channel(f"unix://{server.socket_path}") as channel:
        assert check(channel) == health_pb2.HealthCheckResponse.SERVING
        for name in SERVICES:
            assert check(channel, name) == health_pb2.HealthCheckResponse.SERVING
        blobs = backend.castore.blobs

        def offline(digest):
            raise BackendError("metadata store unreachable")
        monkeypatch.setattr(blobs, "has", offline)
        assert check(channel) == health_pb2.HealthCheckResponse.NOT_SERVING
        assert check(channel, "tvix.store.v1.PathInfoService") == health_pb2.HealthCheckResponse.NOT_SERVING
        monkeypatch.undo()
        assert check(channel) == health_pb2.HealthCheckResponse.SERVING
        with pytest.raises(grpc.RpcError) as e:
            check(channel, "no.such.Service")
        assert e.value.code() == grpc.StatusCode.NOT_FOUND


def test_health_checks_while_the_store_hangs_answer_not_serving_and_share_one_probe(daemon, monkeypatch) -> None:
    """A hung store (a read that never returns, injected) holds one probe, not a server thread
    per Check: every Check answers NOT_SERVING within the deadline, and SERVING once it is back."""
    from concurrent.futures import ThreadPoolExecutor
    import threading

    backend, server = daemon
    release, calls = threading.Event(), []

    def hung(digest):
        calls.append(digest)
        release.wait()
        return True
    with grpc.insecure_channel(f"unix://{server.socket_path}") as channel:
        monkeypatch.setattr(backend.castore.blobs, "has", hung)
        with ThreadPoolExecutor(12) as pool:
            statuses = list(pool.map(lambda _: health_pb2_grpc.HealthStub(channel).Check(
                health_pb2.HealthCheckRequest(), timeout=60).status, range(24)))
        assert statuses == [health_pb2.HealthCheckResponse.NOT_SERVING] * 24
        assert len(calls) == 1
        release.set()
        monkeypatch.undo()
        assert check(channel) == health_pb2.HealthCheckResponse.SERVING


def test_reflection_lists_and_describes_every_service(daemon) -> None:
    """What `grpcurl list` and `grpcurl describe` ask, through grpcio-reflection's client."""
    _, server = daemon
    with grpc.insecure_channel(f"unix://{server.socket_path}") as channel:
        database = ProtoReflectionDescriptorDatabase(channel)
        listed = set(database.get_services())
        assert set(SERVICES) | {"grpc.health.v1.Health", "grpc.reflection.v1alpha.ServerReflection"} <= listed
        assert {"tvix.castore.v1.BlobService", "snix.castore.v1.BlobService"} <= listed
        pool = DescriptorPool(database)
        for name in SERVICES:
            methods = {m.name: m for m in pool.FindServiceByName(name).methods}
            package = name.rpartition(".")[0]
            assert all(m.input_type.full_name.startswith(package.split(".")[0] + ".") for m in methods.values())
        put = {m.name: m for m in pool.FindServiceByName("snix.castore.v1.DirectoryService").methods}["Put"]
        assert put.input_type.full_name == "snix.castore.v1.Directory"
        assert [f.name for f in put.input_type.fields] == ["directories", "files", "symlinks"]


def cairn(*args: str, **kw) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "store.cli", *args], stderr=subprocess.PIPE, text=True, **kw)


def test_cairn_daemon_with_a_token_and_a_socket_mode(tmp_path: Path, short_dir: Path) -> None:
    (tmp_path / "token").write_text("t0ken\n")
    (tmp_path / "src").mkdir()
    (tmp_path / "src" / "f").write_text("hello\n")
    url = f"grpc+unix://{short_dir}/d.sock"
    daemon = cairn("daemon", "--listen", url, "--store", f"local://{tmp_path}/store",
                   "--token-file", str(tmp_path / "token"), "--socket-mode", "600")
    try:
        _lines_until(daemon.stderr, "listening on")
        assert stat.S_IMODE(os.stat(short_dir / "d.sock").st_mode) == 0o600
        env = {k: v for k, v in os.environ.items() if k != "CAIRN_TOKEN"}
        refused = subprocess.run([sys.executable, "-m", "store.cli", "import", "--store", url, str(tmp_path / "src")],
                                 capture_output=True, text=True, env=env)
        assert refused.returncode == 1 and refused.stderr.count("\n") == 1
        assert "UNAUTHENTICATED" in refused.stderr
        imported = subprocess.run([sys.executable, "-m", "store.cli", "import", "--store",
                                   f"{url}?token-file={tmp_path}/token", str(tmp_path / "src")],
                                  capture_output=True, text=True, env=env, check=True)
        shown = subprocess.run([sys.executable, "-m", "store.cli", "path-info", "--store", url,
                                imported.stdout.strip()], capture_output=True, text=True, env=env, check=True)
        assert imported.stdout.strip() in shown.stdout  # reads need no token by default
    finally:
        daemon.terminate()
        assert daemon.wait(timeout=30) == 0


@pytest.mark.parametrize("args, message", [
    (["--tls-cert", "c.pem"], "--tls-cert and --tls-key go together"),
    (["--token-for", "all"], "--token-for all needs --token-file"),
    (["--token-file", "/nonexistent/token"], "cannot read token file /nonexistent/token"),
    (["--socket-mode", "u+rw"], "not an octal mode"),
    (["--socket-mode", "1777"], "not a permission mode"),
])
def test_cairn_daemon_refuses_bad_options_in_one_line(tmp_path: Path, args: list[str], message: str) -> None:
    daemon = cairn("daemon", "--listen", f"grpc+unix://{tmp_path}/d.sock", "--store", "memory://", *args)
    _, err = daemon.communicate(timeout=60)
    assert daemon.returncode != 0 and message in err
    assert "Traceback" not in err
