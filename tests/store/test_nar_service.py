"""cairn.store.v1.NarService (store/grpc_server.py, store/pathinfo/grpc.py): NARs rendered by the
daemon, with real daemons on unix sockets and clients opened by URL. The client falls back to
rendering from its own services when the daemon cannot render (no NarService, or a closure it
does not hold whole), and every error it can foresee comes before the first byte."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Iterator

import grpc
import pytest
import zstandard
from hypothesis import given, settings, strategies as st

from castore.digest import B3Digest
from castore.errors import BackendError, CorruptionError, NotFoundError
from castore.grpc_common import MESSAGE_CHUNK
from castore.grpc_serve import RunningServer, serve
from castore.grpc_server import add_service, castore_services
from castore.nodes import Directory, DirectoryNode, FileNode, node_to_proto, rename
from castore.proto import castore_pb2
from store import api
from store.grpc_server import PATHINFO_SERVICE, PathInfoServicer, _messages, daemon_services
from store.pathinfo.grpc import _nar_data
from store.pathinfo.service import PathInfoService
from store.proto import rpc_nar_pb2 as nar_pb
from store.url import Store, open_store
from tests.castore.local_store import flip_byte_of_chunk
from tests.conftest import _pseudo_random, make_zoo
from tests.nar_bridge.conftest import Bridge

ROOT_DIR = Path(__file__).resolve().parents[2]


@pytest.fixture
def zoo(tmp_path: Path) -> Path:
    # several messages, the last short; more than a bridge's piece channel holds (4 MiB)
    return make_zoo(tmp_path / "zoo", big=5 * MESSAGE_CHUNK + 12345)


def imported(store_url: str, tree: Path) -> tuple[str, bytes]:
    """The store path of `tree` imported into the store at `store_url`, and its NAR as the store renders it."""
    with open_store(store_url) as store:
        info = api.import_path(store, tree)
        return info.store_path.absolute, b"".join(api.dump(store, info.store_path))


def nix_dump(path: Path) -> bytes:
    return subprocess.run(["nix-store", "--dump", str(path)], capture_output=True, check=True).stdout


class Renders(PathInfoService):
    """Counts the renders asked of a path-info service (the daemon's, here)."""

    def __init__(self, inner: PathInfoService) -> None:
        self.inner = inner
        self.renders = 0

    def get(self, digest):
        return self.inner.get(digest)

    def put(self, info):
        return self.inner.put(info)

    def list(self):
        return self.inner.list()

    def calculate_nar(self, node):
        return self.inner.calculate_nar(node)

    def nar(self, castore, node, *, check_blobs=False, layout=None, flush=None):
        self.renders += 1
        return self.inner.nar(castore, node, check_blobs=check_blobs, layout=layout, flush=flush)


@pytest.fixture
def daemon(tmp_path: Path, short_dir: Path, zoo: Path) -> Iterator[tuple[RunningServer, Renders, str, bytes]]:
    """`cairn daemon`'s services over a local store holding the zoo: the server, its counted
    path-info service, the zoo's store path and its NAR."""
    url = f"local://{tmp_path}/store"
    path, nar = imported(url, zoo)
    backend = open_store(url)
    counted = Renders(backend.pathinfo)
    server = serve(f"grpc+unix://{short_dir}/d.sock", daemon_services(Store(backend.castore, counted)))
    try:
        yield server, counted, path, nar
    finally:
        server.stop(grace=None)
        backend.close()


def test_the_daemon_renders_what_a_local_dump_does(daemon, zoo: Path) -> None:
    server, counted, path, nar = daemon
    with open_store(server.url) as client:
        store_path, _ = api.split_store_path(path)
        assert b"".join(api.dump(client, store_path)) == nar
        for below in ("nested/deeper", "big.bin", "rel-link"):
            assert b"".join(api.dump(client, store_path, below)) == nix_dump(zoo / below)
    assert counted.renders == 4


def test_cairn_dump_over_grpc_is_nix_store_dump(daemon, zoo: Path) -> None:
    server, counted, path, _ = daemon
    dumped = subprocess.run([sys.executable, "-m", "store.cli", "dump", "--store", server.url, path],
                            capture_output=True, check=True, cwd=ROOT_DIR).stdout
    assert dumped == nix_dump(zoo)
    assert counted.renders == 1


def test_many_renders_at_once_take_turns_and_each_is_whole(daemon) -> None:
    """More concurrent NARs than the process has turns (castore/turns.py): each is exact."""
    from concurrent.futures import ThreadPoolExecutor

    server, counted, path, nar = daemon
    store_path, _ = api.split_store_path(path)
    with open_store(server.url) as client, ThreadPoolExecutor(12) as pool:
        dumps = list(pool.map(lambda _: b"".join(api.dump(client, store_path)), range(12)))
    assert dumps == [nar] * 12 and counted.renders == 12


def test_nar_bridge_over_the_daemon_has_it_render_whole_nars(daemon, tmp_path: Path) -> None:
    """A real nar-bridge in front of the daemon: a whole NAR (plain or zstd) is the daemon's render,
    relayed; a range is read from the blobs it overlaps, with no render asked of the daemon."""
    server, counted, path, nar = daemon
    bridge = Bridge(server.url, ["--read-only"], tmp_path / "bridge.log").start()
    try:
        nar_url = _nar_url(bridge, path)
        before = counted.renders
        assert bridge.get(nar_url).body == nar
        assert counted.renders == before + 1
        zstd = bridge.get(nar_url, accept_encoding="zstd")
        assert zstd.headers["content-encoding"] == "zstd"
        assert zstandard.ZstdDecompressor().decompressobj().decompress(zstd.body) == nar
        ranged = bridge.get(nar_url, range="bytes=1000-2000000")
        assert ranged.status == 206 and ranged.body == nar[1000:2000001]
        assert counted.renders == before + 2
    finally:
        bridge.stop()


def test_nar_bridge_over_the_daemon_keeps_the_relayed_nar_in_its_nar_cache(daemon, tmp_path: Path) -> None:
    """The daemon's pieces (views into its messages) are teed into the NAR cache like a local
    render's: the second request is sent from the cache, and the daemon renders nothing more."""
    server, counted, path, nar = daemon
    bridge = Bridge(server.url, ["--read-only", "--nar-cache", str(tmp_path / "nars")], tmp_path / "bridge.log").start()
    try:
        nar_url = _nar_url(bridge, path)
        before = counted.renders
        assert bridge.get(nar_url).body == nar
        assert bridge.get(nar_url).body == nar
        assert bridge.get(nar_url, range="bytes=5-5000000").body == nar[5:5000001]
        assert counted.renders == before + 1
    finally:
        bridge.stop()


def _nar_url(bridge: Bridge, path: str) -> str:
    """The NAR's URL as Nix finds it: in the path's narinfo."""
    narinfo = bridge.get(f"/{Path(path).name[:32]}.narinfo").body.decode()
    return "/" + dict(line.split(": ", 1) for line in narinfo.splitlines())["URL"]


class Misrenders(Renders):
    """A daemon's path-info service whose NARs come a byte short or a byte long."""

    def __init__(self, inner: PathInfoService, change: int) -> None:
        super().__init__(inner)
        self.change = change

    def nar(self, castore, node, *, check_blobs=False, layout=None, flush=None):
        whole = b"".join(self.inner.nar(castore, node, check_blobs=check_blobs, layout=layout, flush=flush))
        return iter([whole[:-1] if self.change < 0 else whole + b"\0"])


@pytest.mark.parametrize("change", [-1, 1])
def test_a_nar_of_the_wrong_length_from_the_daemon_never_passes_for_whole(change: int, tmp_path: Path) -> None:
    """The bridge announced the NarSize: a body that would not match it fails, and nothing past
    the announced length is sent."""
    from nar_bridge.closures import ClosureCache
    from nar_bridge.nar import nar_body

    with open_store("memory://") as backend:
        info = api.import_path(backend, make_zoo(tmp_path / "zoo", big=1 << 20))
        store = Store(backend.castore, Misrenders(backend.pathinfo, change))
        sent = bytearray()
        with pytest.raises(BackendError, match="short" if change < 0 else "longer"):
            for piece in nar_body(store, ClosureCache(), info.node, info.nar_size, None, "none"):
                sent += piece
        assert len(sent) < info.nar_size


def test_messages_are_whole_mebibytes_but_the_last(daemon) -> None:
    server, _, path, nar = daemon
    with open_store(server.url) as client:
        root = client.pathinfo.get(api.split_store_path(path)[0].digest).node
    with grpc.insecure_channel(f"unix://{server.socket_path}") as channel:
        read = channel.unary_stream("/cairn.store.v1.NarService/Read",
                                    request_serializer=nar_pb.ReadNarRequest.SerializeToString,
                                    response_deserializer=nar_pb.NarPiece.FromString)
        pieces = [m.data for m in read(nar_pb.ReadNarRequest(root=node_to_proto(rename(root, b""))))]
    assert b"".join(pieces) == nar
    assert {len(p) for p in pieces[:-1]} == {MESSAGE_CHUNK} and 0 < len(pieces[-1]) <= MESSAGE_CHUNK


@settings(max_examples=200, deadline=None)
@given(st.lists(st.integers(0, 3 * MESSAGE_CHUNK), max_size=12), st.integers(0, 255))
def test_messages_gather_and_cut_pieces_keeping_every_byte(sizes: list[int], seed: int) -> None:
    pieces = [bytes([(seed + i) % 256]) * size for i, size in enumerate(sizes)]
    messages = [nar_pb.NarPiece.FromString(m).data for m in _messages(pieces)]
    assert b"".join(messages) == b"".join(pieces)
    assert all(len(m) == MESSAGE_CHUNK for m in messages[:-1])
    assert all(0 < len(m) <= MESSAGE_CHUNK for m in messages)


def test_a_daemon_without_nar_service_is_rendered_from_blobs(tmp_path: Path, short_dir: Path, zoo: Path) -> None:
    """Tvix, Snix and older Cairn daemons answer UNIMPLEMENTED: the client renders, and asks once."""
    url = f"local://{tmp_path}/store"
    path, nar = imported(url, zoo)
    with open_store(url) as backend:
        def register(server: grpc.Server) -> None:
            add_service(server, PATHINFO_SERVICE, PathInfoServicer(backend.pathinfo))
        server = serve(f"grpc+unix://{short_dir}/old.sock",
                       [castore_services(backend.castore.blobs, backend.castore.directories), register])
        try:
            with open_store(server.url) as client:
                store_path, _ = api.split_store_path(path)
                assert b"".join(api.dump(client, store_path)) == nar
                assert client.pathinfo._renders is False
                assert b"".join(api.dump(client, store_path, "nested")) == nix_dump(zoo / "nested")
        finally:
            server.stop(grace=None)


def test_a_daemon_missing_part_of_the_closure_says_so_first_and_the_client_renders(
        tmp_path: Path, short_dir: Path, zoo: Path) -> None:
    """Path infos from one daemon, whose own castore lacks the tree; blobs and directories from
    another: NOT_FOUND comes before any byte, and the client renders from what it was given."""
    url = f"local://{tmp_path}/full"
    path, nar = imported(url, zoo)
    with open_store(url) as full, open_store("memory://") as empty:
        infos = serve(f"grpc+unix://{short_dir}/infos.sock",
                      daemon_services(Store(empty.castore, full.pathinfo)))
        data = serve(f"grpc+unix://{short_dir}/data.sock",
                     [castore_services(full.castore.blobs, full.castore.directories)])
        try:
            with open_store(data.url, pathinfo_url=infos.url) as client:
                store_path, _ = api.split_store_path(path)
                assert b"".join(api.dump(client, store_path)) == nar
                assert client.pathinfo._renders is True  # not given up on: another root may be whole there
            with open_store(infos.url) as alone:
                with pytest.raises(NotFoundError):
                    b"".join(api.dump(alone, store_path))
        finally:
            infos.stop(grace=None)
            data.stop(grace=None)


def test_a_missing_blob_is_not_found_before_the_first_byte(tmp_path: Path, short_dir: Path) -> None:
    """The daemon holds every directory but not one blob: NOT_FOUND, no piece sent."""
    with open_store("memory://") as backend:
        with backend.castore.blobs.open_write() as writer:
            writer.write(b"held")
            held = writer.close()
        directory = Directory.of([FileNode(b"a-held", held, 4), FileNode(b"b-missing", B3Digest.of(b"gone"), 4)])
        root = DirectoryNode(b"", backend.castore.directories.put([directory]), directory.size)
        server = serve(f"grpc+unix://{short_dir}/d.sock", daemon_services(backend))
        try:
            with grpc.insecure_channel(f"unix://{server.socket_path}") as channel:
                read = channel.unary_stream("/cairn.store.v1.NarService/Read",
                                            request_serializer=nar_pb.ReadNarRequest.SerializeToString,
                                            response_deserializer=nar_pb.NarPiece.FromString)
                call = read(nar_pb.ReadNarRequest(root=node_to_proto(root)))
                with pytest.raises(grpc.RpcError) as caught:
                    next(call)
                assert caught.value.code() == grpc.StatusCode.NOT_FOUND
                assert "b-missing" in caught.value.details()
        finally:
            server.stop(grace=None)


@pytest.mark.parametrize("request_bytes, reason", [
    (b"", "needs a root node"),
    (nar_pb.ReadNarRequest(root=node_to_proto(FileNode(b"named", B3Digest.of(b"x"), 1))).SerializeToString(),
     "empty name"),
    (nar_pb.ReadNarRequest(root=castore_pb2.Node(file=castore_pb2.FileNode(digest=b"short", size=1)))
     .SerializeToString(), "digest"),
    (b"\xff\xff\xff\xff", ""),
], ids=["no root", "named root", "short digest", "malformed"])
def test_bad_requests_are_invalid_argument(daemon, request_bytes: bytes, reason: str) -> None:
    server, counted, _, _ = daemon
    with grpc.insecure_channel(f"unix://{server.socket_path}") as channel:
        read = channel.unary_stream("/cairn.store.v1.NarService/Read")
        with pytest.raises(grpc.RpcError) as caught:
            next(read(request_bytes))
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert reason in caught.value.details()
    assert counted.renders == 0


def test_a_damaged_chunk_in_the_daemon_fails_the_dump(tmp_path: Path, short_dir: Path) -> None:
    """The daemon checks every chunk as it renders: a damaged one ends the stream with DATA_LOSS,
    and `cairn dump` fails in one line, never exiting 0 with a NAR that is not the path's."""
    tree = tmp_path / "tree"
    tree.mkdir()
    damaged = _pseudo_random(10_000, seed=9)  # one chunk
    (tree / "a-first").write_bytes(_pseudo_random(2 * MESSAGE_CHUNK, seed=8))
    (tree / "b-damaged").write_bytes(damaged)
    store_dir = tmp_path / "store"
    path, _ = imported(f"local://{store_dir}", tree)
    flip_byte_of_chunk(store_dir, damaged)
    with open_store(f"local://{store_dir}") as backend:
        server = serve(f"grpc+unix://{short_dir}/d.sock", daemon_services(backend))
        try:
            with open_store(server.url) as client, pytest.raises(CorruptionError):
                b"".join(api.dump(client, api.split_store_path(path)[0]))
            done = subprocess.run([sys.executable, "-m", "store.cli", "dump", "--store", server.url, path],
                                  capture_output=True, cwd=ROOT_DIR)
        finally:
            server.stop(grace=None)
    assert done.returncode != 0
    assert done.stderr.count(b"\n") == 1 and b"Traceback" not in done.stderr


def test_nar_service_is_a_read(tmp_path: Path, short_dir: Path, zoo: Path) -> None:
    """A daemon with a write token still renders for anyone; with the token for all calls, only for
    holders (the client sends it from $CAIRN_TOKEN)."""
    token = tmp_path / "token"
    token.write_text("s3cret\n")
    url = f"local://{tmp_path}/store"
    path, nar = imported(url, zoo)
    sock = short_dir / "d.sock"
    for flags, env, ok in ((["--token-file", str(token)], {}, True),
                           (["--token-file", str(token), "--token-for", "all"], {}, False),
                           (["--token-file", str(token), "--token-for", "all"], {"CAIRN_TOKEN": "s3cret"}, True)):
        daemon = subprocess.Popen([sys.executable, "-m", "store.cli", "daemon", "--listen", f"grpc+unix://{sock}",
                                   "--store", url, *flags], cwd=ROOT_DIR, stderr=subprocess.PIPE)
        try:
            _wait_for(sock, daemon)
            done = subprocess.run([sys.executable, "-m", "store.cli", "dump", "--store", f"grpc+unix://{sock}", path],
                                  capture_output=True, cwd=ROOT_DIR, env={**os.environ, **env})
        finally:
            daemon.terminate()
            daemon.wait(30)
            sock.unlink(missing_ok=True)
        if ok:
            assert done.returncode == 0 and done.stdout == nar
        else:
            assert done.returncode != 0 and done.stdout == b"" and done.stderr.count(b"\n") == 1


def _wait_for(sock: Path, proc: subprocess.Popen) -> None:
    import socket
    import time

    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        assert proc.poll() is None, proc.stderr.read()
        with socket.socket(socket.AF_UNIX) as probe:
            try:
                probe.connect(str(sock))
                return
            except OSError:
                time.sleep(0.05)
    raise AssertionError("the daemon did not start")


@pytest.mark.parametrize("message, data", [
    (b"", b""),
    (b"\x0a\x03abc", b"abc"),
    (b"\x0a\x00", b""),  # not canonical (a default written out): protobuf reads it
    (b"\x0a\x01x\x10\x05", b"x"),  # an unknown field after the data: protobuf reads it
    (b"\x0a\x01x\x0a\x02yz", b"yz"),  # the field twice: the last one counts, as in protobuf
], ids=["empty", "canonical", "default written", "unknown field", "repeated"])
def test_the_client_reads_a_nar_piece_as_protobuf_does(message: bytes, data: bytes) -> None:
    assert bytes(_nar_data(message)) == data == nar_pb.NarPiece.FromString(message).data


def test_stalled_readers_are_cut_and_the_daemon_serves_again(tmp_path: Path, short_dir: Path) -> None:
    """One more stalled NAR stream than the daemon runs at once: without the stall guard, the last
    stream never started, nor did any stream after it (the dump)."""
    from castore.grpc_serve import MAX_STREAMS

    url = f"local://{tmp_path}/store"
    path, nar = imported(url, make_zoo(tmp_path / "zoo", big=48 << 20))  # more than flow control lets through
    sock = short_dir / "d.sock"
    daemon = subprocess.Popen([sys.executable, "-m", "store.cli", "daemon", "--listen", f"grpc+unix://{sock}",
                               "--store", url, "--stall-timeout", "1s"], cwd=ROOT_DIR, stderr=subprocess.PIPE)
    channels = []
    try:
        _wait_for(sock, daemon)
        with open_store(f"grpc+unix://{sock}") as client:
            root = rename(client.pathinfo.get(api.split_store_path(path)[0].digest).node, b"")
        request = nar_pb.ReadNarRequest(root=node_to_proto(root)).SerializeToString()
        stalled = []
        for _ in range(MAX_STREAMS + 1):
            channels.append(grpc.insecure_channel(f"unix:{sock}"))
            stalled.append(channels[-1].unary_stream("/cairn.store.v1.NarService/Read")(request, timeout=120))
            next(stalled[-1])  # one message, then nothing more is taken
        done = subprocess.run([sys.executable, "-m", "store.cli", "dump", "--store", f"grpc+unix://{sock}", path],
                              capture_output=True, cwd=ROOT_DIR, timeout=120)
        assert done.returncode == 0 and done.stdout == nar
        with pytest.raises(grpc.RpcError) as cut:
            for _ in stalled[0]:
                pass
        assert cut.value.code() is grpc.StatusCode.CANCELLED
    finally:
        for channel in channels:
            channel.close()
        daemon.terminate()
        daemon.wait(30)
    assert b"cancelled: its client took or sent nothing for 1 s" in daemon.stderr.read()


@pytest.mark.parametrize("value", ["0", "-5", "soon"])
def test_a_bad_stall_timeout_is_one_line(value: str, short_dir: Path) -> None:
    done = subprocess.run([sys.executable, "-m", "store.cli", "daemon", "--listen", f"grpc+unix://{short_dir}/d.sock",
                           "--store", "memory://", "--stall-timeout", value], capture_output=True, cwd=ROOT_DIR)
    assert done.returncode != 0 and b"Traceback" not in done.stderr
    assert b"--stall-timeout" in done.stderr.splitlines()[-1]
