"""The server edge: both package names, error statuses, verification by the clients, the runner."""

from __future__ import annotations

import ctypes
import io
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import IO, Iterator

import grpc
import pytest

from castore.blobs.memory import MemoryBlobService
from castore.blobs.service import BlobStat, BlobWriter
from castore.digest import B3Digest
from castore.directories.memory import MemoryDirectoryService
from castore.errors import BackendError, CorruptionError, NotFoundError, ValidationError
from castore.grpc_serve import RunningServer, serve
from castore.grpc_server import BlobServicer, add_service, castore_services
from castore.nodes import Directory, FileNode
from castore.proto import castore_pb2 as cpb
from castore.proto import rpc_blobstore_pb2 as bpb
from castore.proto import rpc_directory_pb2 as dpb
from castore.url import CAStore, grpc_target, open_castore
from tests.castore.conftest import ChunkedMemoryBlobService, free_port

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def unix_url(short_dir: Path) -> str:
    return f"grpc+unix://{short_dir}/castore.sock"


def serving(url: str, blobs: MemoryBlobService) -> RunningServer:
    return serve(url, [castore_services(blobs, MemoryDirectoryService())])


@pytest.fixture
def served(unix_url: str, request) -> Iterator[tuple[MemoryBlobService, CAStore]]:
    """A server over the blob service named by the test's `blobs` parameter, and a client."""
    blobs = request.param() if hasattr(request, "param") else MemoryBlobService()
    running = serving(unix_url, blobs)
    with open_castore(unix_url) as client:
        yield blobs, client
    running.stop(grace=None)


@pytest.mark.parametrize("package", ["tvix", "snix"])
def test_both_package_names_answer_every_method(server: RunningServer, package: str) -> None:
    blob_service = f"/{package}.castore.v1.BlobService"
    dir_service = f"/{package}.castore.v1.DirectoryService"
    leaf = Directory(files=(FileNode(b"f", B3Digest.of(b"data"), 4),))
    with grpc.insecure_channel(grpc_target(server.url)) as channel:
        blob_put = channel.stream_unary(f"{blob_service}/Put", bpb.BlobChunk.SerializeToString,
                                        bpb.PutBlobResponse.FromString)
        blob_stat = channel.unary_unary(f"{blob_service}/Stat", bpb.StatBlobRequest.SerializeToString,
                                        bpb.StatBlobResponse.FromString)
        blob_read = channel.unary_stream(f"{blob_service}/Read", bpb.ReadBlobRequest.SerializeToString,
                                         bpb.BlobChunk.FromString)
        dir_put = channel.stream_unary(f"{dir_service}/Put", cpb.Directory.SerializeToString,
                                       dpb.PutDirectoryResponse.FromString)
        dir_get = channel.unary_stream(f"{dir_service}/Get", dpb.GetDirectoryRequest.SerializeToString,
                                       cpb.Directory.FromString)

        digest = blob_put(iter([bpb.BlobChunk(data=b"da"), bpb.BlobChunk(data=b"ta")])).digest
        assert digest == B3Digest.of(b"data")
        assert blob_stat(bpb.StatBlobRequest(digest=digest, send_chunks=True)).chunks == []
        assert b"".join(m.data for m in blob_read(bpb.ReadBlobRequest(digest=digest))) == b"data"
        assert dir_put(iter([leaf.to_proto()])).root_digest == leaf.digest
        assert list(dir_get(dpb.GetDirectoryRequest(digest=leaf.digest))) == [leaf.to_proto()]


class FaultyBlobService(MemoryBlobService):
    """Stat raises the error named by the blob's contents."""

    FAULTS = {b"runtime": RuntimeError("secret /internal/path"), b"backend": BackendError("disk offline"),
              b"corrupt": CorruptionError("pack 3 damaged"), b"missing": NotFoundError("gone")}

    def stat(self, digest: B3Digest) -> BlobStat | None:
        for content, error in self.FAULTS.items():
            if digest == B3Digest.of(content):
                raise error
        return super().stat(digest)


@pytest.mark.parametrize("served", [FaultyBlobService], indirect=True)
@pytest.mark.parametrize("content, status, error, message", [
    (b"runtime", grpc.StatusCode.INTERNAL, BackendError, "internal error: RuntimeError"),
    (b"backend", grpc.StatusCode.UNAVAILABLE, BackendError, "disk offline"),
    (b"corrupt", grpc.StatusCode.DATA_LOSS, CorruptionError, "pack 3 damaged"),
    (b"missing", grpc.StatusCode.NOT_FOUND, NotFoundError, "gone"),
])
def test_errors_become_statuses_and_back_without_tracebacks(served, unix_url: str, content: bytes,
                                                            status: grpc.StatusCode, error: type, message: str) -> None:
    _, client = served
    digest = B3Digest.of(content)
    with grpc.insecure_channel(grpc_target(unix_url)) as channel:
        stat = channel.unary_unary("/tvix.castore.v1.BlobService/Stat", bpb.StatBlobRequest.SerializeToString,
                                   bpb.StatBlobResponse.FromString)
        with pytest.raises(grpc.RpcError) as e:
            stat(bpb.StatBlobRequest(digest=digest))
    assert e.value.code() == status
    assert message in e.value.details()
    assert "Traceback" not in e.value.details() and "/internal/path" not in e.value.details()
    if error is not NotFoundError:  # the client reads NOT_FOUND as "absent"
        with pytest.raises(error, match=message):
            client.blobs.stat(digest)


class LyingReadBlobService(MemoryBlobService):
    """Answers reads with other bytes of the same length."""

    def open_read(self, digest: B3Digest):
        reader = super().open_read(digest)
        return reader and type(reader)(bytes(b ^ 1 for b in reader.read()))


class LyingChunkListBlobService(ChunkedMemoryBlobService):
    """Hands out another blob's chunk list: every chunk is genuine, the whole is not."""

    def stat(self, digest: B3Digest) -> BlobStat | None:
        others = [d for d in self._chunk_lists if d != bytes(digest)]
        return BlobStat(0, self._chunk_lists[others[0]]) if others else super().stat(digest)


class LyingWriteBlobService(MemoryBlobService):
    """Claims every Put stored the empty blob."""

    def open_write(self) -> BlobWriter:
        class Writer(BlobWriter):
            def write(self, data) -> int:
                return len(data)

            def close(self) -> B3Digest:
                return B3Digest.of(b"")
        return Writer()


@pytest.mark.parametrize("served, why", [(LyingReadBlobService, "received data does not match"),
                                          (LyingChunkListBlobService, "chunks do not add up")],
                         indirect=["served"])
def test_reader_rejects_data_that_does_not_match_the_digest(served, why: str) -> None:
    _, client = served
    digests = []
    for _ in range(2):  # two chunked blobs, so one can be given the other's chunk list
        with client.blobs.open_write() as writer:
            writer.write(os.urandom(1_000_000))
            digests.append(writer.close())
    with pytest.raises(CorruptionError, match=why), client.blobs.open_read(digests[0]) as reader:
        reader.read()


@pytest.mark.parametrize("served", [LyingWriteBlobService], indirect=True)
def test_writer_rejects_a_digest_other_than_what_it_sent(served) -> None:
    _, client = served
    writer = client.blobs.open_write()
    writer.write(b"some data")
    with pytest.raises(CorruptionError, match="stored blob"):
        writer.close()


def test_runner_replaces_a_stale_socket_and_removes_its_own(unix_url: str, short_dir: Path) -> None:
    path = short_dir / "castore.sock"
    with socket.socket(socket.AF_UNIX) as dead:
        dead.bind(str(path))  # a socket file nobody listens on, as a crashed daemon leaves
    running = serving(unix_url, MemoryBlobService())
    with open_castore(unix_url) as client:
        assert not client.blobs.has(B3Digest.of(b""))
    running.stop(grace=None)
    assert not path.exists()


def test_runner_refuses_a_live_socket_or_another_file(unix_url: str, short_dir: Path) -> None:
    running = serving(unix_url, MemoryBlobService())
    try:
        with pytest.raises(BackendError, match="another server"):
            serving(unix_url, MemoryBlobService())
    finally:
        running.stop(grace=None)
    (short_dir / "castore.sock").write_text("not a socket")
    with pytest.raises(ValidationError, match="not a socket"):
        serving(unix_url, MemoryBlobService())


def test_runner_refuses_a_tcp_port_in_use() -> None:
    url = f"grpc+http://127.0.0.1:{free_port()}"
    running = serving(url, MemoryBlobService())
    try:
        with pytest.raises(BackendError, match="cannot listen"):
            serving(url, MemoryBlobService())
    finally:
        running.stop(grace=None)


DAEMON = """
import logging, sys
from castore.grpc_serve import run_daemon
from castore.grpc_server import BlobServicer, add_service, castore_services
from castore.url import open_castore
logging.basicConfig(level=logging.INFO)
store = open_castore("memory://")
open_write = store.blobs.open_write
def announced():  # the test signals once a Put is running here, not merely sent
    print("put started", file=sys.stderr, flush=True)
    return open_write()
store.blobs.open_write = announced
sys.exit(run_daemon(sys.argv[1], [castore_services(store.blobs, store.directories)]))
"""


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_daemon_finishes_calls_in_flight_and_exits_0_on_signal(unix_url: str, short_dir: Path, sig) -> None:
    daemon = subprocess.Popen([sys.executable, "-c", DAEMON, unix_url], cwd=REPO,
                              stderr=subprocess.PIPE, text=True)
    try:
        with open_castore(unix_url) as client:
            _wait_until_serving(client, daemon)
            writer = client.blobs.open_write()
            writer.write(b"x" * 3_000_000)  # a Put in flight when the signal arrives
            said = _lines_until(daemon.stderr, "put started")
            daemon.send_signal(sig)
            time.sleep(0.3)
            assert writer.close() == B3Digest.of(b"x" * 3_000_000)
        assert daemon.wait(timeout=20) == 0
    finally:
        daemon.kill()
    assert f"listening on {unix_url}" in said + daemon.stderr.read()
    assert not (short_dir / "castore.sock").exists()


@pytest.fixture
def cpu_load() -> Iterator[None]:
    """Two busy processes for the test's length: signals race with a loaded scheduler."""
    hogs = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(2)]
    yield
    for hog in hogs:
        hog.kill()
        hog.wait()


def _signal_a_thread(pid: int, thread: int, sig: signal.Signals) -> None:
    """Send `sig` to one thread of another process (tgkill), as the kernel may hand a process-directed
    signal to any thread that does not block it."""
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.tgkill(pid, thread, int(sig)) != 0:
        raise OSError(ctypes.get_errno(), f"tgkill {pid} {thread}")


@pytest.mark.slow
def test_daemon_stops_on_a_signal_whichever_thread_receives_it(short_dir: Path, cpu_load) -> None:
    """Issue 14, defect 10: with the signal on a server thread, the main thread slept on in
    Event.wait() and the daemon ran on. Each round delivers SIGTERM to the process or to one of
    its other threads while a Put is in flight, under CPU load."""
    for round in range(8):
        url = f"grpc+unix://{short_dir}/castore-{round}.sock"
        daemon = subprocess.Popen([sys.executable, "-c", DAEMON, url], cwd=REPO, stderr=subprocess.PIPE, text=True)
        try:
            with open_castore(url) as client:
                _wait_until_serving(client, daemon)
                writer = client.blobs.open_write()
                writer.write(b"y" * 3_000_000)
                _lines_until(daemon.stderr, "put started")
                others = sorted(int(t) for t in os.listdir(f"/proc/{daemon.pid}/task") if int(t) != daemon.pid)
                if round % 2:
                    _signal_a_thread(daemon.pid, others[round % len(others)], signal.SIGTERM)
                else:
                    daemon.send_signal(signal.SIGTERM)
                assert writer.close() == B3Digest.of(b"y" * 3_000_000)
            assert daemon.wait(timeout=60) == 0, f"round {round}"
        finally:
            daemon.kill()
            daemon.wait()
        assert "stopping on SIGTERM" in daemon.stderr.read()


def _lines_until(stream: IO[str], marker: str) -> str:
    """What `stream` says up to and including the first line holding `marker`."""
    said = ""
    while marker not in said:
        line = stream.readline()
        assert line, f"the daemon ended before saying {marker!r}: {said}"
        said += line
    return said


def _wait_until_serving(client: CAStore, daemon: subprocess.Popen) -> None:
    deadline = time.monotonic() + 20
    while True:
        try:
            client.blobs.has(B3Digest.of(b""))
            return
        except BackendError:
            if daemon.poll() is not None or time.monotonic() > deadline:
                raise
            time.sleep(0.05)


class SizelessBlobServicer(BlobServicer):
    """A peer like Tvix: Stat says nothing about the size."""

    def Stat(self, request, context):
        return super().Stat(request, _NoTrailers())


class _NoTrailers:
    def set_trailing_metadata(self, metadata) -> None:
        pass


def test_client_learns_sizes_from_a_server_that_does_not_send_them(unix_url: str) -> None:
    blobs = ChunkedMemoryBlobService()
    running = serve(unix_url, [lambda server: add_service(
        server, bpb.DESCRIPTOR.services_by_name["BlobService"], SizelessBlobServicer(blobs))])
    try:
        with open_castore(unix_url) as client:
            for size in (0, 5, 1_000_000):  # one piece, one piece, chunked
                data = os.urandom(size)
                with client.blobs.open_write() as writer:
                    writer.write(data)
                    digest = writer.close()
                assert client.blobs.stat(digest).size == size
                with client.blobs.open_read(digest) as reader:
                    assert reader.seek(0, io.SEEK_END) == size
                    reader.seek(0)
                    assert reader.read() == data
    finally:
        running.stop(grace=None)
