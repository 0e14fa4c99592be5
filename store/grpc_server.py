"""The PathInfoService servicer over any PathInfoService, under tvix.store.v1 and snix.store.v1,
and everything `cairn daemon` serves."""

from __future__ import annotations

from typing import Iterator

import grpc

from castore.errors import NotFoundError, ValidationError
from castore.grpc_server import CASTORE_SERVICES, Register, add_service, castore_services, served_names
from castore.nodes import node_from_proto
from store.pathinfo.checked import CheckedPathInfoService
from store.pathinfo.model import PathInfo
from store.pathinfo.service import PathInfoService
from store.proto import pathinfo_pb2, rpc_pathinfo_pb2 as pb
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
        node = node_from_proto(request)
        if node.name:
            raise ValidationError("CalculateNAR takes a root node with an empty name")
        size, sha256 = self._pathinfo.calculate_nar(node)
        return pb.CalculateNARResponse(nar_size=size, nar_sha256=sha256)


PATHINFO_SERVICE = pb.DESCRIPTOR.services_by_name["PathInfoService"]


def pathinfo_services(pathinfo: PathInfoService) -> Register:
    """The registration that serves PathInfoService (for castore.grpc_serve)."""
    def register(server: grpc.Server) -> None:
        add_service(server, PATHINFO_SERVICE, PathInfoServicer(pathinfo))
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
            pathinfo_services(CheckedPathInfoService(store.pathinfo, store.castore)),
            health_service(store.castore.probe, names),
            reflection_service(services, [*BATCH_SERVICES, health_pb2.DESCRIPTOR.services_by_name["Health"]])]

