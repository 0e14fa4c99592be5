"""PathInfoService client for a remote daemon (`grpc+unix://`, `grpc+http(s)://`), tvix.store.v1."""

from __future__ import annotations

from typing import Iterator

import grpc

from castore.grpc_common import channels, rpc_errors
from castore.nodes import Node, node_to_proto, rename
from castore.url import GrpcEndpoint
from store.pathinfo.model import PathInfo
from store.pathinfo.service import PathInfoService
from store.proto import rpc_pathinfo_pb2 as pb, rpc_pathinfo_pb2_grpc as pb_grpc


class GrpcPathInfoService(PathInfoService):
    def __init__(self, endpoint: GrpcEndpoint) -> None:
        self._endpoint = endpoint
        self._target = endpoint.target
        self._stub = pb_grpc.PathInfoServiceStub(channels.acquire(endpoint))

    def get(self, digest: bytes) -> PathInfo | None:
        try:
            msg = self._stub.Get(pb.GetPathInfoRequest(by_output_hash=bytes(digest)))
        except grpc.RpcError as e:
            if e.code() == grpc.StatusCode.NOT_FOUND:
                return None
            with rpc_errors(self._target):
                raise
        return PathInfo.from_proto(msg)

    def put(self, info: PathInfo) -> PathInfo:
        with rpc_errors(self._target):
            return PathInfo.from_proto(self._stub.Put(info.to_proto()))

    def list(self) -> Iterator[PathInfo]:
        with rpc_errors(self._target):
            for msg in self._stub.List(pb.ListPathInfoRequest()):
                yield PathInfo.from_proto(msg)

    def calculate_nar(self, node: Node) -> tuple[int, bytes]:
        with rpc_errors(self._target):
            resp = self._stub.CalculateNAR(node_to_proto(rename(node, b"")))
        return resp.nar_size, resp.nar_sha256

    def close(self) -> None:
        channels.release(self._endpoint)
