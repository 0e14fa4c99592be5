"""Directories through a real gRPC server and the GrpcDirectoryService client."""

from __future__ import annotations

import grpc
import pytest

from castore.digest import B3Digest
from castore.errors import ValidationError
from castore.grpc_serve import RunningServer
from castore.nodes import Directory, FileNode, SymlinkNode
from castore.proto import castore_pb2 as cpb
from castore.proto import rpc_directory_pb2 as pb
from castore.proto.rpc_directory_pb2_grpc import DirectoryServiceStub
from castore.url import CAStore, grpc_target

FILE_DIGEST = B3Digest.of(b"hello\n")


def diamond() -> list[Directory]:
    """root -> {a, b, link}, a -> leaf, b -> {leaf, c}, c -> leaf: leaf is shared three ways."""
    leaf = Directory(files=(FileNode(b"hello", FILE_DIGEST, 6, executable=True),))
    c = Directory(directories=(leaf.as_node(b"leaf"),))
    a = Directory(directories=(leaf.as_node(b"x"),))
    b = Directory(directories=(c.as_node(b"c"), leaf.as_node(b"y")))
    root = Directory.of([a.as_node(b"a"), b.as_node(b"b"), SymlinkNode(b"link", b"a/x")])
    return [leaf, c, a, b, root]


@pytest.fixture
def stub(server: RunningServer):
    with grpc.insecure_channel(grpc_target(server.url)) as channel:
        yield DirectoryServiceStub(channel)


def test_put_returns_the_root_and_get_returns_each_directory(remote: CAStore, backend: CAStore) -> None:
    closure = diamond()
    assert remote.directories.put(closure) == closure[-1].digest
    for directory in closure:
        assert remote.directories.get(directory.digest) == directory
        assert backend.directories.get(directory.digest) == directory


def test_recursive_get_is_breadth_first_each_once_children_after_parents(remote: CAStore,
                                                                          stub: DirectoryServiceStub) -> None:
    leaf, c, a, b, root = diamond()
    remote.directories.put([leaf, c, a, b, root])
    assert list(remote.directories.get_recursive(root.digest)) == [root, a, b, leaf, c]
    raw = [Directory.from_proto(m) for m in stub.Get(pb.GetDirectoryRequest(digest=root.digest, recursive=True))]
    assert raw == [root, a, b, leaf, c]


def test_recursive_get_of_a_leaf_is_just_the_leaf(remote: CAStore) -> None:
    leaf = diamond()[0]
    remote.directories.put([leaf])
    assert list(remote.directories.get_recursive(leaf.digest)) == [leaf]


def test_recursive_get_of_unknown_root_is_an_empty_ok_stream(remote: CAStore, stub: DirectoryServiceStub) -> None:
    unknown = B3Digest.of(b"no such directory")
    call = stub.Get(pb.GetDirectoryRequest(digest=unknown, recursive=True))
    assert list(call) == []
    assert call.code() == grpc.StatusCode.OK
    assert list(remote.directories.get_recursive(unknown)) == []


def test_get_of_unknown_directory_is_not_found(remote: CAStore, stub: DirectoryServiceStub) -> None:
    unknown = B3Digest.of(b"no such directory")
    with pytest.raises(grpc.RpcError) as e:
        list(stub.Get(pb.GetDirectoryRequest(digest=unknown)))
    assert e.value.code() == grpc.StatusCode.NOT_FOUND
    assert remote.directories.get(unknown) is None


def test_get_without_a_good_digest_is_invalid_argument(stub: DirectoryServiceStub) -> None:
    for request in (pb.GetDirectoryRequest(), pb.GetDirectoryRequest(digest=b"\0" * 31, recursive=True)):
        with pytest.raises(grpc.RpcError) as e:
            list(stub.Get(request))
        assert e.value.code() == grpc.StatusCode.INVALID_ARGUMENT


def test_duplicates_in_a_put_are_tolerated(remote: CAStore) -> None:
    leaf, c, a, b, root = diamond()
    assert remote.directories.put([leaf, leaf, c, a, leaf, b, root]) == root.digest


LEAF = diamond()[0]
UNKNOWN = B3Digest.of(b"never sent")

BAD_PUTS = {
    "unsorted names": ([cpb.Directory(files=[cpb.FileNode(name=b"b", digest=FILE_DIGEST, size=1),
                                             cpb.FileNode(name=b"a", digest=FILE_DIGEST, size=1)])], "unsorted"),
    "duplicate across lists": ([cpb.Directory(
        files=[cpb.FileNode(name=b"a", digest=FILE_DIGEST, size=1)],
        symlinks=[cpb.SymlinkNode(name=b"a", target=b"x")])], "duplicate"),
    "unknown child": ([cpb.Directory(directories=[cpb.DirectoryNode(name=b"d", digest=UNKNOWN, size=2)])],
                      "not sent before"),
    "child after parent": ([cpb.Directory(directories=[LEAF.as_node(b"d").to_proto()]), LEAF.to_proto()],
                           "not sent before"),
    "dangling": ([LEAF.to_proto(), cpb.Directory(symlinks=[cpb.SymlinkNode(name=b"s", target=b"t")])],
                 "not reachable"),
    "wrong edge size": ([LEAF.to_proto(), cpb.Directory(
        directories=[cpb.DirectoryNode(name=b"d", digest=LEAF.digest, size=LEAF.size + 1)])], "size"),
    "digest of 31 bytes": ([cpb.Directory(files=[cpb.FileNode(name=b"f", digest=b"\1" * 31, size=1)])], "32 bytes"),
    "bad name": ([cpb.Directory(files=[cpb.FileNode(name=b"a/b", digest=FILE_DIGEST, size=1)])], "'/'"),
    "empty stream": ([], "no directories"),
}


@pytest.mark.parametrize("case", BAD_PUTS, ids=list(BAD_PUTS))
def test_bad_put_is_invalid_argument_with_the_reason(stub: DirectoryServiceStub, backend: CAStore, case: str) -> None:
    messages, reason = BAD_PUTS[case]
    with pytest.raises(grpc.RpcError) as e:
        stub.Put(iter(messages))
    assert e.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert reason in e.value.details()
    assert "Traceback" not in e.value.details()
    if LEAF.to_proto() in messages:
        assert backend.directories.get(LEAF.digest) is None, "a rejected put stores nothing"


def test_bad_put_through_the_client_is_a_validation_error(remote: CAStore) -> None:
    with pytest.raises(ValidationError, match="not reachable"):
        remote.directories.put([LEAF, Directory(symlinks=(SymlinkNode(b"s", b"t"),))])
    with pytest.raises(ValidationError, match="no directories"):
        remote.directories.put([])


def test_failing_source_of_a_put_raises_its_own_error(remote: CAStore) -> None:
    def closure():
        yield LEAF
        raise KeyError("source broke")

    with pytest.raises(KeyError, match="source broke"):
        remote.directories.put(closure())
    assert remote.directories.get(LEAF.digest) is None

