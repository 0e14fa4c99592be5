"""cairn.castore.v1.BlobBatchService and DirectoryBatchService through real gRPC servers: ReadMany
gives the right bytes in order and checks them, PutMany acknowledges only what is durable (a
daemon killed at random moments keeps every acknowledged blob), GetClosure gives a closure, and
clients of servers without them fall back."""

from __future__ import annotations

import contextlib
import random
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import Iterator

import grpc
import pytest

from castore.blobs.grpc import GrpcBlobService
from castore.blobs.memory import MemoryBlobService
from castore.digest import B3Digest
from castore.directories.memory import MemoryDirectoryService
from castore.errors import CastoreError, CorruptionError
from castore.grpc_batch import BATCH_SERVICES, BlobBatchServicer, cut
from castore.grpc_serve import RunningServer, serve
from castore.grpc_server import CASTORE_SERVICES, BlobServicer, DirectoryServicer, add_service, castore_services
from castore.nodes import Directory
from castore.export import export_node
from castore.ingest import import_path
from castore.proto import rpc_blobbatch_pb2 as pb
from castore.proto import rpc_blobstore_pb2 as bpb
from castore.proto import rpc_directory_pb2 as dpb
from castore.grpc_common import HAS_MANY_MAX
from castore.proto import rpc_blobstore_pb2_grpc as bpb_grpc
from castore.proto.rpc_blobbatch_pb2_grpc import BlobBatchServiceStub
from castore.uploads import Uploads, write_blob
from castore.url import CAStore, grpc_endpoint, grpc_target, open_castore
from tests.castore.conftest import ChunkedMemoryBlobService
from tests.castore.local_seeded import closure

ROOT = Path(__file__).resolve().parents[2]
MiB = 1 << 20


def blob(n: int, seed: int) -> bytes:
    return random.Random(seed).randbytes(n)


SIZES = [0, 1, 5_000, 300_000, MiB + 3, 3 * MiB + 7, 700_001]
"""Empty, small, one message, and blobs the local and chunked backends keep in chunks."""


def read_all_many(store: CAStore, digests: list[B3Digest]) -> list[bytes | None]:
    with contextlib.closing(store.blobs.read_many(digests)) as contents:
        return [None if pieces is None else b"".join(bytes(p) for p in pieces) for pieces in contents]


def test_read_many_gives_every_blob_in_order_and_none_for_missing_ones(remote: CAStore, backend: CAStore) -> None:
    datas = [blob(n, seed) for seed, n in enumerate(SIZES)]
    digests = [write_blob(backend.blobs, d) for d in datas]
    missing = B3Digest.of(b"never stored")
    asked = [digests[3], missing, *digests, digests[0], digests[3]]
    assert read_all_many(remote, asked) == [datas[3], None, *datas, datas[0], datas[3]]


def test_read_many_of_nothing_and_of_many_small_blobs(remote: CAStore, backend: CAStore) -> None:
    assert read_all_many(remote, []) == []
    datas = [blob(i % 300, i) for i in range(5000)]  # more than one request and one response message
    digests = [write_blob(backend.blobs, d) for d in datas]
    assert read_all_many(remote, digests) == datas


def test_more_read_many_calls_at_once_than_turns_each_give_every_blob(remote: CAStore, backend: CAStore) -> None:
    """The server makes each ReadMany message in a turn (castore/turns.py): twelve calls at once,
    some left half read, take turns and each gets its blobs whole; the half-read ones free theirs."""
    from concurrent.futures import ThreadPoolExecutor

    datas = [blob(n, seed) for seed, n in enumerate(SIZES * 3)]
    digests = [write_blob(backend.blobs, d) for d in datas]

    def half_read() -> None:
        with contextlib.closing(remote.blobs.read_many(digests)) as contents:
            next(iter(next(contents)), None)

    with ThreadPoolExecutor(12) as pool:
        reads = [pool.submit(read_all_many, remote, digests) if i % 3 else pool.submit(half_read) for i in range(12)]
        results = [r.result(timeout=60) for r in reads]
    assert [r for r in results if r is not None] == [datas] * 8
    assert read_all_many(remote, digests) == datas


def test_a_consumer_may_leave_blobs_half_read(remote: CAStore, backend: CAStore) -> None:
    datas = [blob(3 * MiB + 1, 1), blob(10, 2)]
    digests = [write_blob(backend.blobs, d) for d in datas]
    with contextlib.closing(remote.blobs.read_many(digests)) as contents:
        first = next(iter(next(contents)))
        assert datas[0].startswith(bytes(first))
        assert b"".join(next(contents)) == datas[1]


@pytest.fixture
def served(short_dir: Path, request) -> Iterator[tuple[MemoryBlobService, CAStore]]:
    blobs = request.param()
    url = f"grpc+unix://{short_dir}/batch.sock"
    running = serve(url, [castore_services(blobs, MemoryDirectoryService())])
    with open_castore(url) as client:
        yield blobs, client
    running.stop(grace=None)


class Tampered(MemoryBlobService):
    """Reads give one byte changed: what a broken server or a bad disk would send."""

    def read_many(self, digests):
        for pieces in super().read_many(digests):
            yield None if pieces is None else [b"!" + bytes(p)[1:] for p in pieces]


class TamperedChunks(ChunkedMemoryBlobService, Tampered):
    pass


@pytest.mark.parametrize("served", [Tampered, TamperedChunks], indirect=True)
def test_read_many_raises_before_it_yields_bytes_that_do_not_match(served) -> None:
    blobs, client = served
    digest = write_blob(blobs, blob(400_000, 7))
    with contextlib.closing(client.blobs.read_many([digest])) as contents:
        with pytest.raises(CorruptionError):
            next(iter(next(contents)))


def test_read_many_digest_of_wrong_length_is_invalid_argument(server: RunningServer) -> None:
    with grpc.insecure_channel(grpc_target(server.url)) as channel:
        stub = BlobBatchServiceStub(channel)
        with pytest.raises(grpc.RpcError) as e:
            list(stub.ReadMany(iter([pb.ReadManyRequest(digests=[b"\1" * 31])])))
    assert e.value.code() == grpc.StatusCode.INVALID_ARGUMENT


def test_has_many_is_one_call_that_never_stats(server: RunningServer, backend: CAStore) -> None:
    """A bridge checks every blob of a NAR before its headers: one HasMany, not a Stat per blob."""
    digests = [write_blob(backend.blobs, blob(n, seed)) for seed, n in enumerate(SIZES)]
    asked = [*digests, B3Digest.of(b"never stored"), digests[0]]
    calls: list[str] = []

    class Counted(grpc.UnaryUnaryClientInterceptor):
        def intercept_unary_unary(self, continuation, details, request):
            calls.append(details.method.rsplit("/", 1)[-1])
            return continuation(details, request)

    client = GrpcBlobService(grpc_endpoint(server.url))
    client._batch_stub = BlobBatchServiceStub(grpc.intercept_channel(client._channel, Counted()))
    client._stub = bpb_grpc.BlobServiceStub(grpc.intercept_channel(client._channel, Counted()))
    try:
        assert client.has_many(asked) == [True] * len(digests) + [False, True]
    finally:
        client.close()
    assert calls == ["HasMany"]


def test_has_many_of_too_many_or_malformed_digests_is_invalid_argument(server: RunningServer) -> None:
    with grpc.insecure_channel(grpc_target(server.url)) as channel:
        stub = BlobBatchServiceStub(channel)
        for digests in ([b"\1" * 31], [b"\1" * 32] * (HAS_MANY_MAX + 1)):
            with pytest.raises(grpc.RpcError) as e:
                stub.HasMany(pb.HasManyRequest(digests=digests))
            assert e.value.code() == grpc.StatusCode.INVALID_ARGUMENT


@contextlib.contextmanager
def tvix_like(short_dir: Path, service: str, servicer: object) -> Iterator[CAStore]:
    """A client of a server like a Tvix or Snix daemon: one tvix.castore.v1 service, no batches."""
    descriptor = (bpb if service == "BlobService" else dpb).DESCRIPTOR.services_by_name[service]
    url = f"grpc+unix://{short_dir}/tvix.sock"
    running = serve(url, [lambda server: add_service(server, descriptor, servicer)])
    try:
        with open_castore(url) as client:
            yield client
    finally:
        running.stop(grace=None)


def test_a_server_without_batches_is_read_and_written_blob_by_blob(short_dir: Path) -> None:
    blobs = MemoryBlobService()
    with tvix_like(short_dir, "BlobService", BlobServicer(blobs)) as client:
        assert client.blobs.write_many() is None
        datas = [blob(n, seed) for seed, n in enumerate(SIZES)]
        with Uploads(client.blobs) as uploads:
            digests = [uploads.put(d) for d in datas]
            uploads.wait()
        assert [blobs.read_all(d) for d in digests] == datas
        assert read_all_many(client, [*digests, B3Digest.of(b"no")]) == [*datas, None]


def test_a_server_without_has_many_is_asked_blob_by_blob(short_dir: Path) -> None:
    blobs = MemoryBlobService()
    digests = [write_blob(blobs, blob(n, seed)) for seed, n in enumerate(SIZES)]
    with tvix_like(short_dir, "BlobService", BlobServicer(blobs)) as client:
        for _ in range(2):  # the second time, the client knows the server has no HasMany
            assert client.blobs.has_many([*digests, B3Digest.of(b"no")]) == [True] * len(digests) + [False]


def test_a_server_without_batches_is_read_blob_by_blob_from_the_first_read(short_dir: Path) -> None:
    blobs = MemoryBlobService()
    datas = [blob(n, seed) for seed, n in enumerate(SIZES)]
    digests = [write_blob(blobs, d) for d in datas]
    with tvix_like(short_dir, "BlobService", BlobServicer(blobs)) as client:
        for _ in range(2):  # the second time, the client knows the server has no ReadMany
            assert read_all_many(client, [*digests, B3Digest.of(b"no")]) == [*datas, None]


def many_closures(n: int) -> list[Directory]:
    """Leaves first: n seeded closures under one root."""
    closures = [closure(seed) for seed in range(n)]
    root = Directory.of(c[-1].as_node(b"c%d" % i) for i, c in enumerate(closures))
    return [d for c in closures for d in c] + [root]


def test_get_recursive_gives_the_closure_through_get_closure(remote: CAStore, backend: CAStore) -> None:
    directories = many_closures(300)  # more than one message of encodings
    root = backend.directories.put(directories)
    assert list(remote.directories.get_recursive(root)) == list(backend.directories.get_recursive(root))
    assert len(set(d.digest for d in remote.directories.get_recursive(root))) == len(set(directories))
    assert list(remote.directories.get_recursive(B3Digest.of(b"unknown"))) == []


def test_a_server_without_directory_batches_gives_closures_by_recursive_get(short_dir: Path) -> None:
    directories = MemoryDirectoryService()
    root = directories.put(many_closures(5))
    with tvix_like(short_dir, "DirectoryService", DirectoryServicer(directories)) as client:
        for _ in range(2):  # the second time, the client knows the server has no GetClosure
            assert list(client.directories.get_recursive(root)) == list(directories.get_recursive(root))


def test_write_many_acknowledges_what_the_served_store_holds(remote: CAStore, backend: CAStore) -> None:
    writer = remote.blobs.write_many()
    assert writer is not None
    datas = [blob(n % 3000, n) for n in range(2000)] + [blob(MiB, 1)]
    try:
        digests = [writer.put(d) for d in datas]
        writer.wait()
    finally:
        writer.close()
    assert digests == [B3Digest.of(d) for d in datas]
    assert [backend.blobs.read_all(d) for d in digests] == datas


def test_put_many_acknowledges_each_sync_in_order(server: RunningServer) -> None:
    requests = [pb.PutManyRequest(blobs=[b"a", b"b"]), pb.PutManyRequest(blobs=[b"c"], sync=True),
                pb.PutManyRequest(sync=True), pb.PutManyRequest(blobs=[b"d"])]
    with grpc.insecure_channel(grpc_target(server.url)) as channel:
        responses = list(BlobBatchServiceStub(channel).PutMany(iter(requests)))
    assert [list(r.digests) for r in responses] == [[B3Digest.of(x) for x in (b"a", b"b", b"c")],
                                                      [B3Digest.of(b"d")]]


def put_many(server: RunningServer, requests: list[pb.PutManyRequest]) -> list[tuple[list[bytes], bytes]]:
    """The (blob digests, root digest) of each response of one PutMany call."""
    with grpc.insecure_channel(grpc_target(server.url)) as channel:
        return [(list(r.digests), r.root_digest) for r in BlobBatchServiceStub(channel).PutMany(iter(requests))]


def test_put_many_stores_a_closure_with_the_blobs_and_acknowledges_its_root(
        server: RunningServer, backend: CAStore) -> None:
    leaf, mid, root = closure(1)
    requests = [pb.PutManyRequest(blobs=[b"a"], directories=[leaf.encoded]),
                pb.PutManyRequest(directories=[mid.encoded, root.encoded], sync=True),
                pb.PutManyRequest(directories=[leaf.encoded])]  # a second closure, stored at the end
    assert put_many(server, requests) == [([B3Digest.of(b"a")], root.digest), ([], leaf.digest)]
    assert set(backend.directories.get_recursive(root.digest)) == {root, mid, leaf}
    assert backend.blobs.read_all(B3Digest.of(b"a")) == b"a"


def test_put_many_stores_a_blob_sent_in_pieces_in_its_turn(server: RunningServer, backend: CAStore) -> None:
    large = blob(3 * MiB + 5, 3)
    requests = [pb.PutManyRequest(blobs=[b"a"]),
                *(pb.PutManyRequest(blob_piece=large[i:i + MiB]) for i in range(0, 3 * MiB, MiB)),
                pb.PutManyRequest(blob_piece=large[3 * MiB:], blob_end=True), pb.PutManyRequest(blobs=[b"b"], sync=True)]
    assert put_many(server, requests) == [([B3Digest.of(b"a"), B3Digest.of(large), B3Digest.of(b"b")], b"")]
    assert backend.blobs.read_all(B3Digest.of(large)) == large


def test_put_many_refuses_a_sync_between_the_pieces_of_a_blob(server: RunningServer, backend: CAStore) -> None:
    with pytest.raises(grpc.RpcError) as e:
        put_many(server, [pb.PutManyRequest(blob_piece=b"half", sync=True), pb.PutManyRequest(blob_end=True)])
    assert e.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert not backend.blobs.has(B3Digest.of(b"half"))


def test_a_blob_abandoned_half_sent_is_not_stored_and_ends_the_stream(remote: CAStore, backend: CAStore) -> None:
    writer = remote.blobs.write_many()
    assert writer is not None
    large = blob(3 * MiB, 4)
    try:
        pieces = writer.open_write()
        pieces.write(large[:2 * MiB])
        pieces.abort()
        with pytest.raises(CastoreError):
            writer.put(b"after")
            writer.wait()
    finally:
        writer.close()
    assert not backend.blobs.has(B3Digest.of(large[:2 * MiB])) and not backend.blobs.has(B3Digest.of(large))


@pytest.mark.parametrize("encodings, reason", [
    (lambda leaf, mid, root: [leaf.encoded, b"\xff\xff"], "directory #2: malformed"),
    (lambda leaf, mid, root: [leaf.encoded, root.encoded], "was not sent before its parent"),
    (lambda leaf, mid, root: [leaf.encoded, mid.encoded, root.encoded, Directory().encoded], "not reachable"),
])
def test_put_many_refuses_a_closure_that_directory_put_would_refuse(
        server: RunningServer, backend: CAStore, encodings, reason: str) -> None:
    leaf, mid, root = closure(2)
    with pytest.raises(grpc.RpcError) as e:
        put_many(server, [pb.PutManyRequest(blobs=[b"b"], directories=encodings(leaf, mid, root), sync=True)])
    assert e.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert reason in e.value.details()
    assert backend.directories.get(leaf.digest) is None


class IgnoringDirectories(BlobBatchServicer):
    """PutMany as a server that does not know its directories (an older daemon): they are dropped."""

    def PutMany(self, requests, context):
        return super().PutMany((pb.PutManyRequest(blobs=r.blobs, sync=r.sync) for r in requests), context)


def test_an_import_to_a_server_that_ignores_put_many_directories_puts_them_with_directory_put(
        short_dir: Path, tmp_path: Path) -> None:
    backend = CAStore(MemoryBlobService(), MemoryDirectoryService())
    blob_service, directory_service = CASTORE_SERVICES
    url = f"grpc+unix://{short_dir}/older.sock"
    running = serve(url, [lambda server: add_service(server, blob_service, BlobServicer(backend.blobs)),
                          lambda server: add_service(server, directory_service, DirectoryServicer(backend.directories)),
                          lambda server: add_service(server, BATCH_SERVICES[0],
                                                     IgnoringDirectories(backend.blobs, backend.directories),
                                                     renamed=False)])
    try:
        with open_castore(url) as client:
            node, _ = import_path(client, many_files(tmp_path / "tree", 50))
    finally:
        running.stop(grace=None)
    assert len(list(backend.directories.get_recursive(node.digest))) == 8


def test_an_import_whose_directories_go_elsewhere_puts_them_there(remote: CAStore, backend: CAStore,
                                                                  tmp_path: Path) -> None:
    elsewhere = MemoryDirectoryService()
    node, _ = import_path(CAStore(remote.blobs, elsewhere), many_files(tmp_path / "tree", 50))
    assert len(list(elsewhere.get_recursive(node.digest))) == 8
    assert backend.directories.get(node.digest) is None


def many_files(root: Path, n: int) -> Path:
    """n small files in 7 directories below `root`."""
    for i in range(n):
        (root / f"d{i % 7}").mkdir(parents=True, exist_ok=True)
        (root / f"d{i % 7}" / f"f{i}").write_text(f"file {i}\n" * (i % 50))
    return root


def test_an_import_over_grpc_stores_about_what_a_local_import_does(tmp_path: Path, short_dir: Path) -> None:
    """One commit for the whole tree, blobs large and small and directories: its frames are as
    large as a local import's, and so is the index (measured before the store closes, which may
    compact it; a commit for the blobs and another for the directories left it 1.5x as large, a
    commit more for each large file 1.2x; a page more or less of its 50 is LMDB's rounding)."""
    tree = tmp_path / "tree"
    for i in range(1000):
        directory = tree / f"a{i % 10}" / f"b{i % 300}"
        directory.mkdir(parents=True, exist_ok=True)
        (directory / f"f{i}.py").write_text(f"def function_{i}(x):\n    return x * {i}\n" * (i % 40 + 1))
    for i in range(3):
        (tree / f"a{i}" / f"large{i}.bin").write_bytes(blob(MiB, i) * 3)
    with open_castore(f"local://{tmp_path}/local") as local:
        node, _ = import_path(local, tree)
        local_usage = local.blobs.usage()
    with open_castore(f"local://{tmp_path}/served") as served:
        url = f"grpc+unix://{short_dir}/import.sock"
        running = serve(url, [castore_services(served.blobs, served.directories)])
        try:
            with open_castore(url) as remote:
                assert import_path(remote, tree)[0] == node
        finally:
            running.stop(grace=None)
        served_usage = served.blobs.usage()
        assert served_usage.pack_bytes <= 1.02 * local_usage.pack_bytes
        assert served_usage.index_bytes <= 1.1 * local_usage.index_bytes


def test_a_tree_imported_and_exported_over_grpc_comes_back_the_same(
        remote: CAStore, tmp_path: Path) -> None:
    tree = tmp_path / "tree"
    (tree / "sub" / "deeper").mkdir(parents=True)
    for i, size in enumerate(SIZES):
        (tree / ("sub" if i % 2 else "sub/deeper") / f"f{i}").write_bytes(blob(size, i))
    (tree / "run.sh").write_bytes(b"#!/bin/sh\n")
    (tree / "run.sh").chmod(0o755)
    (tree / "link").symlink_to("sub/f1")
    node, _ = import_path(remote, tree)
    export_node(remote, node, tmp_path / "copy")
    assert import_path(remote, tmp_path / "copy")[0] == node
    assert (tmp_path / "copy" / "sub" / "deeper" / "f0").read_bytes() == blob(SIZES[0], 0)
    assert (tmp_path / "copy" / "sub" / "f5").read_bytes() == blob(SIZES[5], 5)


@pytest.mark.parametrize("pieces, sizes", [
    ([b"abcdef"], [2, 3, 1]), ([b"ab", b"cdef"], [3, 3]), ([b"a", b"b", b"c"], [3]), ([b""], []),
])
def test_cut_regroups_pieces_at_the_given_sizes(pieces: list[bytes], sizes: list[int]) -> None:
    out = list(cut(pieces, sizes))
    assert [len(p) for p in out] == sizes
    assert b"".join(out) == b"".join(pieces)


@pytest.mark.parametrize("pieces, sizes", [([b"abc"], [2]), ([b"ab"], [3]), ([b"ab"], [])])
def test_cut_refuses_pieces_that_do_not_add_up(pieces: list[bytes], sizes: list[int]) -> None:
    with pytest.raises(CorruptionError):
        list(cut(pieces, sizes))


DAEMON = textwrap.dedent('''
    import sys
    from castore.grpc_serve import run_daemon
    from castore.grpc_server import castore_services
    from castore.url import open_castore

    store = open_castore("local://" + sys.argv[2])
    sys.exit(run_daemon(sys.argv[1], [castore_services(store.blobs, store.directories)]))
''')


@pytest.mark.slow
def test_a_daemon_killed_at_random_moments_keeps_every_blob_put_many_acknowledged(
        tmp_path: Path, short_dir: Path) -> None:
    url = f"grpc+unix://{short_dir}/kill.sock"
    store = tmp_path / "store"
    rnd = random.Random(15)
    acknowledged: list[int] = []
    for kill in range(8):
        daemon = subprocess.Popen([sys.executable, "-c", DAEMON, url, str(store)], cwd=ROOT)
        try:
            acknowledged += _put_until_killed(url, daemon, seed=kill * 10**6, after=rnd.uniform(0.2, 1.0))
        finally:
            daemon.kill()
            daemon.wait()
    with open_castore(f"local://{store}") as reopened:
        lost = [seed for seed in acknowledged if reopened.blobs.read_all(B3Digest.of(blob(seed % 5000, seed))) is None]
    assert len(acknowledged) > 200
    assert not lost


def _put_until_killed(url: str, daemon: subprocess.Popen, seed: int, after: float) -> list[int]:
    """Seeds of the blobs acknowledged before SIGKILL reached the daemon `after` seconds into writing."""
    deadline = time.monotonic() + 30
    with open_castore(url) as client:
        while True:  # until the daemon answers
            try:
                writer = client.blobs.write_many()
                break
            except CastoreError:  # not listening yet
                assert daemon.poll() is None and time.monotonic() < deadline
                time.sleep(0.05)
        assert writer is not None
        acknowledged: list[int] = []
        sent: list[int] = []
        start = time.monotonic()
        try:
            while True:
                sent.append(seed)
                writer.put(blob(seed % 5000, seed))
                seed += 1
                if len(sent) % 50 == 0:
                    writer.wait()
                    acknowledged += sent
                    sent = []
                if daemon.poll() is None and time.monotonic() - start > after:
                    daemon.send_signal(signal.SIGKILL)
        except CastoreError:  # the daemon died: what was not acknowledged may be lost
            pass
        finally:
            writer.close()
    return acknowledged
