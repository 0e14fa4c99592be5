"""Blobs through a real gRPC server, at the wire (statuses, message sizes, chunk lists, what the
served store receives), over each backend and transport; the BlobService contract every backend
meets is in tests/conformance/test_blobservice.py."""

from __future__ import annotations

import random

import grpc
import pytest

from castore.digest import B3Digest
from castore.grpc_common import MESSAGE_CHUNK
from castore.grpc_serve import RunningServer
from castore.proto import rpc_blobstore_pb2 as pb
from castore.proto.rpc_blobstore_pb2_grpc import BlobServiceStub
from castore.url import CAStore, grpc_target

MiB = 1 << 20


def random_bytes(n: int, seed: int = 0) -> bytes:
    return random.Random(seed).randbytes(n)


def put(store: CAStore, data: bytes, piece: int = 100_000) -> B3Digest:
    """Write through the client in pieces that do not line up with messages."""
    with store.blobs.open_write() as writer:
        for i in range(0, len(data), piece):
            writer.write(memoryview(data)[i:i + piece])
        return writer.close()


@pytest.fixture
def stub(server: RunningServer):
    with grpc.insecure_channel(grpc_target(server.url)) as channel:
        yield BlobServiceStub(channel)


@pytest.mark.parametrize("size", [0, 1, MESSAGE_CHUNK - 1, MESSAGE_CHUNK, MESSAGE_CHUNK + 1, 3 * MiB + 5])
def test_a_blob_written_through_the_client_is_in_the_served_store(
        remote: CAStore, backend: CAStore, size: int) -> None:
    """The client side of the round trip is in tests/conformance/test_blobservice.py."""
    data = random_bytes(size, seed=size)
    digest = put(remote, data)
    assert digest == B3Digest.of(data)
    assert backend.blobs.has(digest)
    assert backend.blobs.read_all(digest) == data


def test_stat_and_read_of_unknown_blob_are_not_found(stub: BlobServiceStub) -> None:
    digest = B3Digest.of(b"never stored")
    for call in (lambda: stub.Stat(pb.StatBlobRequest(digest=digest)),
                 lambda: list(stub.Read(pb.ReadBlobRequest(digest=digest)))):
        with pytest.raises(grpc.RpcError) as e:
            call()
        assert e.value.code() == grpc.StatusCode.NOT_FOUND


@pytest.mark.parametrize("length", [0, 31, 33])
def test_digest_of_wrong_length_is_invalid_argument(stub: BlobServiceStub, length: int) -> None:
    for call in (lambda: stub.Stat(pb.StatBlobRequest(digest=b"\1" * length)),
                 lambda: list(stub.Read(pb.ReadBlobRequest(digest=b"\1" * length)))):
        with pytest.raises(grpc.RpcError) as e:
            call()
        assert e.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert "32 bytes" in e.value.details()


def test_put_digest_ignores_how_the_stream_is_split(stub: BlobServiceStub) -> None:
    data = random_bytes(300_000, seed=1)
    splits = [[data], [data[:1], b"", data[1:7], data[7:]], [data[i:i + 999] for i in range(0, len(data), 999)]]
    digests = {stub.Put(iter(pb.BlobChunk(data=p) for p in split)).digest for split in splits}
    assert digests == {B3Digest.of(data)}
    assert stub.Put(iter(())).digest == B3Digest.of(b"")


def test_read_messages_stay_well_below_4_mib(remote: CAStore, stub: BlobServiceStub) -> None:
    data = random_bytes(9 * MiB + 7, seed=9)
    digest = put(remote, data)
    messages = [m.data for m in stub.Read(pb.ReadBlobRequest(digest=digest))]
    assert b"".join(messages) == data
    assert max(map(len, messages)) <= MESSAGE_CHUNK


def test_stat_chunk_list_covers_the_blob_and_each_chunk_reads_alone(
        remote: CAStore, backend: CAStore, stub: BlobServiceStub) -> None:
    data = random_bytes(8 * MiB, seed=8)
    digest = put(remote, data)
    chunks = stub.Stat(pb.StatBlobRequest(digest=digest, send_chunks=True)).chunks
    assert [(c.digest, c.size) for c in chunks] == \
        [(c.digest, c.size) for c in backend.blobs.stat(digest).chunks]
    assert remote.blobs.stat(digest).chunks == backend.blobs.stat(digest).chunks
    if not chunks:  # stored as one piece (memory backend)
        return
    assert len(chunks) > 1 and sum(c.size for c in chunks) == len(data)
    offset = 0
    for chunk in chunks:
        piece = b"".join(m.data for m in stub.Read(pb.ReadBlobRequest(digest=chunk.digest)))
        assert piece == data[offset:offset + chunk.size] and B3Digest.of(piece) == chunk.digest
        with remote.blobs.open_read(B3Digest(chunk.digest)) as reader:
            assert reader.read() == piece
        offset += chunk.size


def test_stat_without_send_chunks_sends_no_chunks(remote: CAStore, stub: BlobServiceStub) -> None:
    digest = put(remote, random_bytes(8 * MiB, seed=8))
    assert not stub.Stat(pb.StatBlobRequest(digest=digest)).chunks
