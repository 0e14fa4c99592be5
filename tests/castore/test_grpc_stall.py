"""The stall guard on a real gRPC server: calls waiting on a stalled client are cancelled and their
workers serve again; clients that keep taking or sending messages, however slowly, and servers that
are slow themselves are never cut."""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path
from typing import Iterator

import grpc
import pytest

from castore.digest import B3Digest
from castore.grpc_serve import serve
from castore.grpc_server import castore_services
from castore.grpc_stall import StallGuard
from castore.proto import rpc_blobstore_pb2 as blob_pb
from castore.url import CAStore, open_castore
from tests.castore.conftest import listen_url

READ = "/tvix.castore.v1.BlobService/Read"
STAT = "/tvix.castore.v1.BlobService/Stat"
PUT = "/tvix.castore.v1.BlobService/Put"
TIMEOUT = 1.0
BLOB = 48 << 20
"""Larger than what HTTP/2 flow control and the client's buffers take while the client reads nothing."""
NO_BDP = (("grpc.http2.bdp_probe", 0),)
"""A client whose receive window stays small, so the server waits on each message it takes."""


@pytest.fixture
def guarded(short_dir: Path) -> Iterator[tuple[str, StallGuard, CAStore, bytes]]:
    store = open_castore("memory://")
    writer = store.blobs.open_write()
    writer.write(os.urandom(BLOB))
    digest = writer.close()
    guard = StallGuard(TIMEOUT)
    url = listen_url("unix", short_dir)
    running = serve(url, [castore_services(store.blobs, store.directories)], max_workers=2, interceptors=[guard])
    yield url, guard, store, digest
    running.stop(grace=None)
    store.close()


def channel(url: str, options: tuple = ()) -> grpc.Channel:
    return grpc.insecure_channel(url.replace("grpc+unix://", "unix:"), options=options)


def read_request(digest: bytes) -> bytes:
    return blob_pb.ReadBlobRequest(digest=digest).SerializeToString()


def test_stalled_readers_are_cancelled_and_their_workers_serve_again(guarded) -> None:
    url, guard, _, digest = guarded
    channels = [channel(url) for _ in range(3)]
    stalled = []
    for ch in channels:  # two workers: the third stream starts once the guard has freed one
        call = ch.unary_stream(READ)(read_request(digest))
        next(call)
        stalled.append(call)
    stat = channels[0].unary_unary(STAT)(blob_pb.StatBlobRequest(digest=digest).SerializeToString(), timeout=60)
    assert stat is not None
    until(lambda: guard.cancelled == 3)  # the third stalls too
    for call in stalled:
        with pytest.raises(grpc.RpcError) as ended:
            for _ in call:
                pass
        assert ended.value.code() is grpc.StatusCode.CANCELLED
    for ch in channels:
        ch.close()


def until(condition, wait: float = 60.0) -> None:
    deadline = time.monotonic() + wait
    while not condition():
        assert time.monotonic() < deadline, "never happened"
        time.sleep(0.05)


def test_a_stalled_writer_is_cancelled_and_nothing_is_kept(guarded) -> None:
    url, guard, store, _ = guarded
    data = os.urandom(3 << 20)
    release = threading.Event()

    def requests() -> Iterator[bytes]:
        yield blob_pb.BlobChunk(data=data[:1 << 20]).SerializeToString()
        release.wait(60)  # the client stalls mid-blob

    with channel(url) as ch:
        future = ch.stream_unary(PUT).future(requests())
        with pytest.raises(grpc.RpcError) as ended:
            future.result(60)
        release.set()
    assert ended.value.code() is grpc.StatusCode.CANCELLED
    assert guard.cancelled == 1
    assert not store.blobs.has(B3Digest.of(data))


def test_the_watchdog_stops_when_no_stream_is_left_and_starts_with_the_next(guarded) -> None:
    url, guard, _, digest = guarded
    with channel(url) as ch:
        for cut in (1, 2):
            call = ch.unary_stream(READ)(read_request(digest))
            next(call)  # then nothing more is taken
            with pytest.raises(grpc.RpcError) as ended:
                until(lambda: guard.cancelled == cut)
                list(call)
            assert ended.value.code() is grpc.StatusCode.CANCELLED
            until(lambda: guard._watchdog is None)  # no stream left: no thread waking for nothing


def test_a_reader_that_keeps_taking_messages_is_never_cut(guarded) -> None:
    """Slower in all than the timeout, but never that slow between two messages."""
    url, guard, store, digest = guarded
    received = 0
    start = time.monotonic()
    with channel(url, NO_BDP) as ch:
        for message in ch.unary_stream(READ)(read_request(digest)):
            received += len(blob_pb.BlobChunk.FromString(message).data)
            time.sleep(TIMEOUT / 20)
    assert received == BLOB and guard.cancelled == 0
    assert time.monotonic() - start > TIMEOUT  # the reader was slow in all: the guard had the time to cut it


def test_a_server_slow_between_its_messages_is_not_cut(short_dir: Path) -> None:
    def slow(request: bytes, context: grpc.ServicerContext) -> Iterator[bytes]:
        for _ in range(2):
            time.sleep(TIMEOUT * 1.5)
            yield b"x"

    guard = StallGuard(TIMEOUT)
    url = listen_url("unix", short_dir)
    handler = grpc.method_handlers_generic_handler("test.Slow", {"Read": grpc.unary_stream_rpc_method_handler(slow)})
    running = serve(url, [lambda server: server.add_generic_rpc_handlers((handler,))], interceptors=[guard])
    try:
        with channel(url) as ch:
            assert list(ch.unary_stream("/test.Slow/Read")(b"")) == [b"x", b"x"]
    finally:
        running.stop(grace=None)
    assert guard.cancelled == 0


@pytest.mark.parametrize("timeout", [0, -1.0])
def test_the_timeout_must_be_positive(timeout: float) -> None:
    with pytest.raises(ValueError):
        StallGuard(timeout)
