"""Directories and blobs share the engine's chunks but not their names: bytes Put as a blob that
happen to be a canonical directory encoding are not a directory (over a real gRPC server on a
local store), and a store written before directories had their rows is marked once on open."""

from __future__ import annotations

from pathlib import Path

import grpc
import pytest

from castore.digest import B3Digest
from castore.directories.local import DIRECTORY_ROWS, ROWS_WRITTEN
from castore.grpc_serve import serve
from castore.grpc_server import castore_services
from castore.local.engine import META
from castore.local.registry import open_engine
from castore.nodes import Directory, DirectoryNode, FileNode
from castore.proto import castore_pb2 as cpb
from castore.proto import rpc_blobstore_pb2 as bpb
from castore.proto import rpc_directory_pb2 as dpb
from castore.url import grpc_target, open_castore

DANGLING = Directory(directories=(DirectoryNode(b"nowhere", B3Digest.of(b"x"), 2),),
                     files=(FileNode(b"f", B3Digest.of(b"f"), 1),))
"""A canonical encoding whose subdirectory does not exist: a Put of it as a directory is refused."""


@pytest.fixture
def channel(tmp_path: Path, short_dir: Path):
    url = f"grpc+unix://{short_dir}/castore.sock"
    with open_castore(f"local://{tmp_path}/store") as store:
        running = serve(url, [castore_services(store.blobs, store.directories)])
        with grpc.insecure_channel(grpc_target(url)) as channel:
            yield channel
        running.stop(grace=None)


def test_a_blob_that_is_a_canonical_directory_encoding_is_not_a_directory(channel) -> None:
    blob_put = channel.stream_unary("/tvix.castore.v1.BlobService/Put", bpb.BlobChunk.SerializeToString,
                                    bpb.PutBlobResponse.FromString)
    dir_get = channel.unary_stream("/tvix.castore.v1.DirectoryService/Get", dpb.GetDirectoryRequest.SerializeToString,
                                   cpb.Directory.FromString)
    digest = blob_put(iter([bpb.BlobChunk(data=DANGLING.encoded)])).digest
    assert digest == DANGLING.digest
    with pytest.raises(grpc.RpcError) as missing:
        list(dir_get(dpb.GetDirectoryRequest(digest=digest)))
    assert missing.value.code() == grpc.StatusCode.NOT_FOUND
    assert list(dir_get(dpb.GetDirectoryRequest(digest=digest, recursive=True))) == []


def test_a_directory_put_after_an_equal_blob_is_found(tmp_path: Path) -> None:
    leaf = Directory(files=(FileNode(b"f", B3Digest.of(b"f"), 1),))
    with open_castore(f"local://{tmp_path}/store") as store:
        with store.blobs.open_write() as writer:
            writer.write(leaf.encoded)
            assert writer.close() == leaf.digest
        assert store.directories.get(leaf.digest) is None
        store.directories.put([leaf])
        assert store.directories.get(leaf.digest) == leaf
        assert store.directories.get_many([leaf.digest, B3Digest.of(b"f")]) == [leaf, None]


def test_a_store_written_before_directory_rows_is_marked_once_when_opened(tmp_path: Path) -> None:
    url = f"local://{tmp_path}/store"
    leaf = Directory(files=(FileNode(b"f", B3Digest.of(b"f"), 1),))
    parent = Directory(directories=(leaf.as_node(b"leaf"),))
    with open_castore(url) as store:
        store.directories.put([leaf, parent])
        with store.blobs.open_write() as writer:
            writer.write(b"plain contents")
            writer.close()
    engine = open_engine(url)  # what a store of the previous version holds: no rows, no META key
    try:
        engine.metadata.commit({}, {DIRECTORY_ROWS: [bytes(leaf.digest), bytes(parent.digest)], META: [ROWS_WRITTEN]})
    finally:
        engine.close()
    with open_castore(url) as store:
        assert store.directories.get(parent.digest) == parent
        assert [d.digest for d in store.directories.get_recursive(parent.digest)] == [parent.digest, leaf.digest]
        assert store.directories.get(B3Digest.of(b"plain contents")) is None
