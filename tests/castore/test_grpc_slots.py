"""Stream slots (castore/grpc_slots.py) on a real server: while every slot is held by a stream that
is still working, calls that are not streams, health checks and health watches are answered, and a
waiting stream starts as soon as a slot frees."""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Iterator

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from castore.grpc_health import health_service
from castore.grpc_serve import serve
from castore.grpc_server import castore_services
from castore.grpc_slots import StreamSlots
from castore.proto import rpc_blobstore_pb2 as blob_pb
from castore.url import open_castore
from tests.castore.conftest import listen_url

SLOTS = 2


@pytest.fixture
def busy(short_dir: Path) -> Iterator[tuple[grpc.Channel, threading.Event, list[str]]]:
    """A server with 2 stream slots and a `test.Busy/Work` stream that runs until `release` is set;
    `started` lists the streams that began."""
    release = threading.Event()
    started: list[str] = []

    def work(request: bytes, context: grpc.ServicerContext) -> Iterator[bytes]:
        started.append(request.decode())
        yield b"started"
        release.wait(60)
        yield b"done"

    store = open_castore("memory://")
    handler = grpc.method_handlers_generic_handler("test.Busy", {"Work": grpc.unary_stream_rpc_method_handler(work)})
    url = listen_url("unix", short_dir)
    running = serve(url, [castore_services(store.blobs, store.directories),
                          health_service(lambda: None, ["test.Busy"]),
                          lambda server: server.add_generic_rpc_handlers((handler,))],
                    max_workers=8, max_streams=SLOTS)
    channel = grpc.insecure_channel(url.replace("grpc+unix://", "unix:"))
    try:
        yield channel, release, started
    finally:
        release.set()
        channel.close()
        running.stop(grace=None)
        store.close()


def test_unary_calls_and_health_are_answered_while_every_slot_is_busy(busy) -> None:
    channel, release, started = busy
    work = channel.unary_stream("/test.Busy/Work")
    streams = [work(str(i).encode(), timeout=60) for i in range(SLOTS + 1)]
    deadline = time.monotonic() + 30
    while len(started) < SLOTS:  # which streams get the slots is the server's choice
        assert time.monotonic() < deadline, "the streams never started"
        time.sleep(0.01)
    stat = channel.unary_unary("/tvix.castore.v1.BlobService/Stat")
    with pytest.raises(grpc.RpcError) as missing:  # answered (not found), not queued behind the streams
        stat(blob_pb.StatBlobRequest(digest=bytes(32)).SerializeToString(), timeout=30)
    assert missing.value.code() is grpc.StatusCode.NOT_FOUND
    health = health_pb2_grpc.HealthStub(channel)
    assert health.Check(health_pb2.HealthCheckRequest(), timeout=30).status == health_pb2.HealthCheckResponse.SERVING
    watch = health.Watch(health_pb2.HealthCheckRequest(), timeout=30)
    assert next(watch).status == health_pb2.HealthCheckResponse.SERVING  # a watch takes no slot
    watch.cancel()
    assert len(started) == SLOTS  # the third stream still waits for a slot
    release.set()
    assert [list(stream) for stream in streams] == [[b"started", b"done"]] * (SLOTS + 1)
    assert sorted(started) == [str(i) for i in range(SLOTS + 1)]


def test_a_slot_is_needed() -> None:
    with pytest.raises(ValueError):
        StreamSlots(0)
