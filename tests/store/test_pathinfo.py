"""PathInfo encoding and validation, and PathInfoService at the gRPC edge (statuses, the daemon's
side); the PathInfoService contract is in tests/conformance/test_pathinfoservice.py."""

from __future__ import annotations

import hashlib
import itertools

import grpc
import pytest

from castore.digest import EMPTY_DIGEST
from castore.errors import ValidationError
from castore.grpc_serve import serve
from castore.grpc_server import castore_services
from castore.ingest import import_path
from castore.nodes import DirectoryNode, FileNode, SymlinkNode
from store.contentaddress import ContentAddress
from store.grpc_server import pathinfo_services
from store.pathinfo.model import PathInfo
from store.proto import pathinfo_pb2, rpc_pathinfo_pb2, rpc_pathinfo_pb2_grpc
from store.signing import SecretKey
from store.storepath import StorePath
from store.url import open_store

REF = StorePath.from_basename("00bgd045z0d4icpbc2yyz4gx48ak44la-dep")
DRV = StorePath.from_basename("0g78smhdlirplinc5v7fxwmxr731rgx4-thing.drv")
PATH = StorePath.from_basename("7nn1mg7sbg5c7rs9nzcfks9almxk6m5x-test")
SHA = hashlib.sha256(b"nar").digest()


def sample(**kw) -> PathInfo:
    key = SecretKey.generate("test-1")
    args = dict(store_path=PATH, node=FileNode(b"", EMPTY_DIGEST, 0), nar_size=112, nar_sha256=SHA,
                references=(REF, PATH), deriver=DRV,
                ca=ContentAddress.parse("fixed:r:sha256:1b4sb93wp679q4zx9k1ignby1yna3z7c4c2ri3wphylbc2dwsys0"))
    args.update(kw)
    info = PathInfo(**args)
    return info.with_signatures((key.sign(info.fingerprint()),))


def test_proto_roundtrip_keeps_everything():
    info = sample()
    again = PathInfo.decode(info.encode())
    assert again == info
    assert again.node.name == PATH.basename.encode()
    msg = info.to_proto()
    assert msg.narinfo.deriver.name == "thing"  # tvix omits the .drv suffix
    assert list(msg.references) == [REF.digest, PATH.digest]


@pytest.mark.parametrize("kw", [
    {},
    dict(references=(), deriver=None, ca=None),
    dict(node=DirectoryNode(b"", EMPTY_DIGEST, 6)),
    dict(node=SymlinkNode(b"", b"/nix/store/elsewhere")),
])
def test_decode_reads_every_field_of_the_stored_encoding(kw):
    info = sample(**kw)
    assert PathInfo.decode(info.encode()) == info


def test_an_encoding_in_another_form_is_read_with_protobuf():
    info = sample()
    assert PathInfo.decode(info.encode() + b"\x7a\x00") == info  # an unknown field 15


def corrupt(mutate) -> bytes:
    msg = sample().to_proto()
    mutate(msg)
    return msg.SerializeToString()


@pytest.mark.parametrize("mutate, reason", [
    (lambda m: m.ClearField("narinfo"), "no narinfo"),
    (lambda m: m.ClearField("node"), "no node"),
    (lambda m: m.references.append(b"x" * 20), "references but"),
    (lambda m: m.references.__setitem__(0, b"short"), "20 bytes"),
    (lambda m: m.references.__setitem__(0, PATH.digest), "does not match"),
    (lambda m: m.narinfo.reference_names.__setitem__(0, "not a basename"), "basename"),
    (lambda m: m.node.file.__setattr__("name", b"no-digest"), "basename"),
    (lambda m: m.narinfo.__setattr__("nar_sha256", b"x" * 20), "32 bytes"),
    (lambda m: m.narinfo.signatures[0].__setattr__("data", b"x" * 10), "64 bytes"),
    (lambda m: m.narinfo.ca.__setattr__("digest", b"x" * 5), "bytes"),
    (lambda m: m.narinfo.deriver.__setattr__("digest", b"x" * 3), "20 bytes"),
])
def test_invalid_pathinfos_are_rejected(mutate, reason):
    with pytest.raises(ValidationError, match=reason):
        PathInfo.decode(corrupt(mutate))


_ports = itertools.count()


@pytest.fixture(params=["memory", "local"])
def remote(request, tmp_path):
    """A real daemon-style gRPC server on a unix socket, and a store opened through it."""
    url = "memory://" if request.param == "memory" else f"local://{tmp_path}/store"
    backend = open_store(url)
    sock = tmp_path / f"d{next(_ports)}.sock"
    server = serve(f"grpc+unix://{sock}", [castore_services(backend.castore.blobs, backend.castore.directories),
                                          pathinfo_services(backend.pathinfo, backend.castore)])
    try:
        with open_store(f"grpc+unix://{sock}") as client:
            yield backend, client, f"unix://{sock}"
    finally:
        server.stop(0)
        backend.close()


def test_grpc_put_reaches_the_daemon_and_calculate_nar_is_the_daemons(remote, zoo):
    """The client side of the round trip is in tests/conformance/test_pathinfoservice.py."""
    backend, client, _ = remote
    node, _ = import_path(client.castore, zoo)
    info = sample(node=node)
    client.pathinfo.put(info)
    assert backend.pathinfo.get(PATH.digest) == info
    assert client.pathinfo.calculate_nar(node) == backend.pathinfo.calculate_nar(node)


def test_grpc_statuses(remote):
    _, _, target = remote
    for package in ("tvix", "snix"):
        with grpc.insecure_channel(target) as channel:
            get = channel.unary_unary(f"/{package}.store.v1.PathInfoService/Get",
                                      request_serializer=rpc_pathinfo_pb2.GetPathInfoRequest.SerializeToString,
                                      response_deserializer=pathinfo_pb2.PathInfo.FromString)
            with pytest.raises(grpc.RpcError) as e:
                get(rpc_pathinfo_pb2.GetPathInfoRequest(by_output_hash=b"x" * 20))
            assert e.value.code() == grpc.StatusCode.NOT_FOUND
            with pytest.raises(grpc.RpcError) as e:
                get(rpc_pathinfo_pb2.GetPathInfoRequest(by_output_hash=b"x" * 3))
            assert e.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    with grpc.insecure_channel(target) as channel:
        stub = rpc_pathinfo_pb2_grpc.PathInfoServiceStub(channel)
        bad = sample().to_proto()
        bad.references.append(b"y" * 20)
        with pytest.raises(grpc.RpcError) as e:
            stub.Put(bad)
        assert e.value.code() == grpc.StatusCode.INVALID_ARGUMENT and "reference" in e.value.details()
        named = sample().to_proto().node
        with pytest.raises(grpc.RpcError) as e:
            stub.CalculateNAR(named)
        assert e.value.code() == grpc.StatusCode.INVALID_ARGUMENT
