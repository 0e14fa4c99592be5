"""Directories through a real gRPC server, at the wire (statuses, stream order, refused messages,
what the served store receives); the DirectoryService contract is in
tests/conformance/test_directoryservice.py."""

from __future__ import annotations

import grpc
import pytest

from castore.digest import B3Digest
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


def test_a_closure_put_through_the_client_is_in_the_served_store(remote: CAStore, backend: CAStore) -> None:
    """The client side of the round trip is in tests/conformance/test_directoryservice.py."""
    closure = diamond()
    assert remote.directories.put(closure) == closure[-1].digest
    for directory in closure:
        assert backend.directories.get(directory.digest) == directory


def test_recursive_get_is_breadth_first_each_once_children_after_parents(remote: CAStore,
                                                                          stub: DirectoryServiceStub) -> None:
    leaf, c, a, b, root = diamond()
    remote.directories.put([leaf, c, a, b, root])
    raw = [Directory.from_proto(m) for m in stub.Get(pb.GetDirectoryRequest(digest=root.digest, recursive=True))]
    assert raw == [root, a, b, leaf, c]


def test_recursive_get_of_unknown_root_is_an_empty_ok_stream(remote: CAStore, stub: DirectoryServiceStub) -> None:
    unknown = B3Digest.of(b"no such directory")
    call = stub.Get(pb.GetDirectoryRequest(digest=unknown, recursive=True))
    assert list(call) == []
    assert call.code() == grpc.StatusCode.OK


def test_get_of_unknown_directory_is_not_found(remote: CAStore, stub: DirectoryServiceStub) -> None:
    unknown = B3Digest.of(b"no such directory")
    with pytest.raises(grpc.RpcError) as e:
        list(stub.Get(pb.GetDirectoryRequest(digest=unknown)))
    assert e.value.code() == grpc.StatusCode.NOT_FOUND


def test_get_without_a_good_digest_is_invalid_argument(stub: DirectoryServiceStub) -> None:
    for request in (pb.GetDirectoryRequest(), pb.GetDirectoryRequest(digest=b"\0" * 31, recursive=True)):
        with pytest.raises(grpc.RpcError) as e:
            list(stub.Get(request))
        assert e.value.code() == grpc.StatusCode.INVALID_ARGUMENT


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
