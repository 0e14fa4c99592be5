"""castore.limits on the ways into castore besides a NAR: a file-system import and a gRPC Put
(a real server over a unix socket) past a limit are refused, saying which limit."""

from __future__ import annotations

from pathlib import Path

import grpc
import pytest

from castore.digest import B3Digest
from castore.directories.memory import MemoryDirectoryService
from castore.blobs.memory import MemoryBlobService
from castore.errors import ValidationError
from castore.grpc_serve import serve
from castore.grpc_server import castore_services
from castore.ingest import import_path
from castore.limits import MAX_DEPTH_ENV, MAX_ENTRIES_ENV
from castore.nodes import Directory, FileNode
from castore.proto import castore_pb2 as cpb
from castore.proto import rpc_directory_pb2 as dpb
from castore.url import grpc_target, open_castore


def test_an_import_past_a_limit_is_refused_saying_which(tmp_path: Path, monkeypatch) -> None:
    tree = tmp_path / "tree"
    (tree / "a" / "b" / "c").mkdir(parents=True)
    for i in range(5):
        (tree / f"f{i}").write_text("x")
    with open_castore(f"local://{tmp_path}/store") as store:
        monkeypatch.setenv(MAX_DEPTH_ENV, "2")
        with pytest.raises(ValidationError, match=f"more than 2 levels deep .*{MAX_DEPTH_ENV}"):
            import_path(store, tree)
        monkeypatch.setenv(MAX_DEPTH_ENV, "3")
        monkeypatch.setenv(MAX_ENTRIES_ENV, "5")
        with pytest.raises(ValidationError, match=f"more than 5 entries .*{MAX_ENTRIES_ENV}"):
            import_path(store, tree)
        monkeypatch.setenv(MAX_ENTRIES_ENV, "6")
        node, _ = import_path(store, tree)
        assert store.directories.get(node.digest) is not None


def test_a_deep_import_needs_no_recursion(tmp_path: Path) -> None:
    levels = [tmp_path / "deep"]
    for _ in range(1200):  # past Python's recursion limit, within PATH_MAX
        levels.append(levels[-1] / "d")
    for level in levels:
        level.mkdir()  # one at a time: pathlib's parents=True recurses
    try:
        with open_castore("memory://") as store:
            node, stats = import_path(store, levels[0])
        assert stats.directories == 1201
    finally:
        for level in reversed(levels):  # shutil.rmtree, which pytest cleans up with, recurses
            level.rmdir()


@pytest.fixture
def directory_put(short_dir: Path):
    url = f"grpc+unix://{short_dir}/castore.sock"
    running = serve(url, [castore_services(MemoryBlobService(), MemoryDirectoryService())])
    with grpc.insecure_channel(grpc_target(url)) as channel:
        yield channel.stream_unary("/tvix.castore.v1.DirectoryService/Put", cpb.Directory.SerializeToString,
                                   dpb.PutDirectoryResponse.FromString)
    running.stop(grace=None)


def test_a_grpc_put_of_a_directory_wider_than_the_limit_is_invalid_argument(directory_put, monkeypatch) -> None:
    monkeypatch.setenv(MAX_ENTRIES_ENV, "100")
    files = [cpb.FileNode(name=b"%03d" % i, digest=bytes(B3Digest.of(b"")), size=0) for i in range(101)]
    with pytest.raises(grpc.RpcError) as refused:
        directory_put(iter([cpb.Directory(files=files)]))
    assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "more than 100 entries" in refused.value.details()
    assert directory_put(iter([cpb.Directory(files=files[:100])])).root_digest


def test_a_grpc_put_of_a_chain_deeper_than_the_limit_is_invalid_argument(directory_put, monkeypatch) -> None:
    monkeypatch.setenv(MAX_DEPTH_ENV, "10")
    chain = [Directory(files=(FileNode(b"leaf", B3Digest.of(b""), 0),))]
    for _ in range(11):
        chain.append(Directory(directories=(chain[-1].as_node(b"d"),)))
    assert directory_put(iter(d.to_proto() for d in chain[:11])).root_digest == chain[10].digest
    with pytest.raises(grpc.RpcError) as refused:
        directory_put(iter(d.to_proto() for d in chain))
    assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "more than 10 levels deep" in refused.value.details()
