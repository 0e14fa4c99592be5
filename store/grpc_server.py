"""The PathInfoService servicer over any PathInfoService, under tvix.store.v1 and snix.store.v1,
and everything `cairn daemon` serves."""

from __future__ import annotations

from typing import Iterable, Iterator

import grpc

from castore.errors import NotFoundError, ValidationError
from castore.grpc_common import MESSAGE_CHUNK
from castore.grpc_server import CASTORE_SERVICES, Register, add_service, castore_services, served_names
from castore.nodes import Node, node_from_proto
from castore.turns import in_turns
from castore.url import CAStore
from castore.wire import varint
from store.pathinfo.checked import CheckedPathInfoService
from store.pathinfo.model import PathInfo
from store.pathinfo.service import PathInfoService
from store.proto import pathinfo_pb2, rpc_nar_pb2 as nar_pb, rpc_pathinfo_pb2 as pb
from store.nixbase32 import encode as nix32
from store.url import Store


class PathInfoServicer:
    def __init__(self, pathinfo: PathInfoService) -> None:
        self._pathinfo = pathinfo

    def Get(self, request: pb.GetPathInfoRequest, context: grpc.ServicerContext) -> pathinfo_pb2.PathInfo:
        digest = request.by_output_hash
        if request.WhichOneof("by_what") is None or len(digest) != 20:
            raise ValidationError(f"by_output_hash must be 20 bytes, got {len(digest)}")
        info = self._pathinfo.get(digest)
        if info is None:
            raise NotFoundError(f"no path info for {nix32(digest)}")
        return info.to_proto()

    def Put(self, request: pathinfo_pb2.PathInfo, context: grpc.ServicerContext) -> pathinfo_pb2.PathInfo:
        return self._pathinfo.put(PathInfo.from_proto(request)).to_proto()

    def List(self, request: pb.ListPathInfoRequest, context: grpc.ServicerContext) -> Iterator[pathinfo_pb2.PathInfo]:
        for info in self._pathinfo.list():
            yield info.to_proto()

    def CalculateNAR(self, request, context: grpc.ServicerContext) -> pb.CalculateNARResponse:
        size, sha256 = self._pathinfo.calculate_nar(_root(request, "CalculateNAR"))
        return pb.CalculateNARResponse(nar_size=size, nar_sha256=sha256)


class NarServicer:
    """cairn.store.v1.NarService (proto/cairn/store/v1/rpc_nar.proto): NARs rendered here, from the
    daemon's own store, with the skeletons and read-ahead of a local dump."""

    def __init__(self, pathinfo: PathInfoService, castore: CAStore) -> None:
        self._pathinfo = pathinfo
        self._castore = castore

    def Read(self, request: nar_pb.ReadNarRequest, context: grpc.ServicerContext) -> Iterator[bytes]:
        if not request.HasField("root"):
            raise ValidationError("ReadNar needs a root node")
        pieces = self._pathinfo.nar(self._castore, _root(request.root, "ReadNar"), check_blobs=True)
        yield from in_turns(_messages(pieces))  # a message a turn: see castore.turns


def _root(message, method: str) -> Node:
    node = node_from_proto(message)
    if node.name:
        raise ValidationError(f"{method} takes a root node with an empty name")
    return node


def _messages(pieces: Iterable[bytes]) -> Iterator[bytes]:
    """The pieces gathered and cut into encoded NarPiece messages of MESSAGE_CHUNK bytes of data
    (the last one shorter): a message costs Python's gRPC the same on each side whatever its size,
    and a render's pieces are 64 KiB. Encoded here, in the one join that gathers the data."""
    held: list[memoryview] = []
    room = MESSAGE_CHUNK
    for piece in pieces:
        view = memoryview(piece)
        while len(view) >= room:
            held.append(view[:room])
            yield _nar_piece(held, MESSAGE_CHUNK)
            view = view[room:]
            held, room = [], MESSAGE_CHUNK
        if view:
            held.append(view)
            room -= len(view)
    if held:
        yield _nar_piece(held, MESSAGE_CHUNK - room)


def _nar_piece(data: list[memoryview], size: int) -> bytes:
    return b"".join([_NAR_PIECE_DATA, varint(size), *data])


_NAR_PIECE_DATA = b"\x0a"
"""The key of NarPiece.data: field 1, length-delimited."""


PATHINFO_SERVICE = pb.DESCRIPTOR.services_by_name["PathInfoService"]
NAR_SERVICE = nar_pb.DESCRIPTOR.services_by_name["NarService"]
"""Cairn's extension, served under its own name only (cairn.store.v1)."""


def pathinfo_services(pathinfo: PathInfoService, castore: CAStore) -> Register:
    """The registration that serves PathInfoService and NarService (for castore.grpc_serve)."""
    def register(server: grpc.Server) -> None:
        add_service(server, PATHINFO_SERVICE, PathInfoServicer(pathinfo))
        add_service(server, NAR_SERVICE, NarServicer(pathinfo, castore), renamed=False)
    return register


def daemon_services(store: Store) -> list[Register]:
    """What the daemon serves: castore's services, the path infos behind the admission checks
    (store/pathinfo/checked.py: its clients are not trusted), health and reflection."""
    from grpc_health.v1 import health_pb2

    from castore.grpc_batch import BATCH_SERVICES
    from castore.grpc_health import health_service
    from castore.grpc_reflection import reflection_service

    services = (*CASTORE_SERVICES, PATHINFO_SERVICE)
    names = [name for service in services for name in served_names(service)]
    return [castore_services(store.castore.blobs, store.castore.directories),
            pathinfo_services(CheckedPathInfoService(store.pathinfo, store.castore), store.castore),
            health_service(store.castore.probe, names),
            reflection_service(services, [*BATCH_SERVICES, NAR_SERVICE,
                                          health_pb2.DESCRIPTOR.services_by_name["Health"]])]

