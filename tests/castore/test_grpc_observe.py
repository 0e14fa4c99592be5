"""The call observer on a real gRPC server: calls counted by method and code (with another
interceptor after it, as authentication is), failed calls logged, unknown methods not counted."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, Callable, Iterator

import grpc
import pytest
from prometheus_client import CollectorRegistry, generate_latest

from castore.digest import B3Digest
from castore.grpc_observe import CallObserver, GrpcMetrics
from castore.grpc_serve import serve
from castore.grpc_server import castore_services
from castore.proto import rpc_blobstore_pb2 as blob_pb
from castore.url import open_castore
from tests.castore.conftest import listen_url
from tests.scrape import Scrape

STAT = "/tvix.castore.v1.BlobService/Stat"
READ = "/snix.castore.v1.BlobService/Read"


class RefuseStat(grpc.ServerInterceptor):
    """Stands for an authentication interceptor: refuses every Stat."""

    def intercept_service(self, continuation: Callable, details: grpc.HandlerCallDetails) -> Any:
        if details.method.endswith("/Stat"):
            return grpc.unary_unary_rpc_method_handler(
                lambda request, context: context.abort(grpc.StatusCode.UNAUTHENTICATED, "no token"))
        return continuation(details)


@pytest.fixture
def observed(short_dir: Path) -> Iterator[tuple[str, CollectorRegistry]]:
    registry = CollectorRegistry()
    store = open_castore("memory://")
    url = listen_url("unix", short_dir)
    running = serve(url, [castore_services(store.blobs, store.directories)],
                    interceptors=[CallObserver(GrpcMetrics(registry)), RefuseStat()])
    yield url, registry
    running.stop(grace=None)
    store.close()


def test_calls_are_counted_by_method_and_code_and_failures_logged(observed, caplog) -> None:
    url, registry = observed
    caplog.set_level(logging.INFO, logger="cairn.grpc")
    with open_castore(url) as client:
        writer = client.blobs.open_write()
        writer.write(b"observed")
        digest = writer.close()
        channel = grpc.insecure_channel(url.replace("grpc+unix://", "unix:"))
        read = channel.unary_stream(READ)
        request = blob_pb.ReadBlobRequest(digest=digest).SerializeToString()
        assert b"observed" in b"".join(read(request))
        with pytest.raises(grpc.RpcError) as missing:
            list(read(blob_pb.ReadBlobRequest(digest=B3Digest.of(b"nobody")).SerializeToString()))
        assert missing.value.code() == grpc.StatusCode.NOT_FOUND
        with pytest.raises(grpc.RpcError) as refused:
            channel.unary_unary(STAT)(blob_pb.StatBlobRequest(digest=digest).SerializeToString())
        assert refused.value.code() == grpc.StatusCode.UNAUTHENTICATED
        with pytest.raises(grpc.RpcError) as unknown:
            channel.unary_unary("/no.such.Service/Call")(b"")
        assert unknown.value.code() == grpc.StatusCode.UNIMPLEMENTED
        channel.close()

    counted = Scrape(generate_latest(registry).decode())
    assert counted.value("cairn_grpc_calls_total", method="/tvix.castore.v1.BlobService/Put", code="OK") == 1
    assert counted.value("cairn_grpc_calls_total", method=READ, code="OK") == 1
    assert counted.value("cairn_grpc_calls_total", method=READ, code="NOT_FOUND") == 1
    assert counted.value("cairn_grpc_calls_total", method=STAT, code="UNAUTHENTICATED") == 1
    assert "/no.such.Service/Call" not in counted.label_values()
    assert counted.value("cairn_grpc_call_duration_seconds_count", method=READ) == 2
    failed = {(r.fields["method"], r.fields["code"]) for r in caplog.records if r.name == "cairn.grpc"}
    assert failed == {(READ, "NOT_FOUND"), (STAT, "UNAUTHENTICATED")}
