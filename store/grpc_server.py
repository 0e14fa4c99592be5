"""The PathInfoService servicer over any PathInfoService, under tvix.store.v1 and snix.store.v1."""

from __future__ import annotations

from typing import Iterator

import grpc

from castore.errors import NotFoundError, ValidationError
from castore.grpc_server import Register, add_service
from castore.nodes import node_from_proto
from store.pathinfo.model import PathInfo
from store.pathinfo.service import PathInfoService
from store.proto import pathinfo_pb2, rpc_pathinfo_pb2 as pb
from store.nixbase32 import encode as nix32


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


def pathinfo_services(pathinfo: PathInfoService) -> Register:
    """The registration that serves PathInfoService (for castore.grpc_serve)."""
    def register(server: grpc.Server) -> None:
        add_service(server, pb.DESCRIPTOR.services_by_name["PathInfoService"], PathInfoServicer(pathinfo))
    return register
