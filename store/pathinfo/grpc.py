"""PathInfoService client for a remote daemon (`grpc+unix://`, `grpc+http(s)://`), tvix.store.v1.

A Cairn daemon also serves cairn.store.v1.NarService (proto/cairn/store/v1/rpc_nar.proto): a NAR
is then rendered by the daemon, from its own store, and only its bytes travel.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Iterator

import grpc

from castore.errors import BackendError
from castore.grpc_common import channels, error_from, rpc_errors
from castore.nodes import Node, node_to_proto, rename
from castore.url import CAStore, GrpcEndpoint
from castore.wire import NotCanonical, fields
from store.pathinfo.model import PathInfo
from store.pathinfo.service import PathInfoService
from store.proto import rpc_nar_pb2 as nar_pb
from store.proto import rpc_pathinfo_pb2 as pb, rpc_pathinfo_pb2_grpc as pb_grpc

if TYPE_CHECKING:
    from store.nar.layout import NarLayout


NAR_READ = "/cairn.store.v1.NarService/Read"


class GrpcPathInfoService(PathInfoService):
    def __init__(self, endpoint: GrpcEndpoint) -> None:
        self._endpoint = endpoint
        self._target = endpoint.target
        channel = channels.acquire(endpoint)
        self._stub = pb_grpc.PathInfoServiceStub(channel)
        self._read_nar = channel.unary_stream(NAR_READ, request_serializer=nar_pb.ReadNarRequest.SerializeToString)
        """NarService.Read with its messages left encoded: _nar_data reads them without a copy."""
        self._renders = True  # until a server without NarService says so

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

    def nar(self, castore: CAStore, node: Node, *, check_blobs: bool = False,
            layout: NarLayout | None = None, flush: int | None = None) -> Iterator[bytes]:
        """Rendered by the daemon, which says before the first piece whether it can (it checks that
        it holds every blob), in pieces of its messages' size. A server without NarService (Tvix,
        Snix, an older Cairn) or without the whole closure: rendered here from `castore`, which may
        hold what the daemon does not, with `layout` and `flush`."""
        if self._renders:
            call = self._read_nar(nar_pb.ReadNarRequest(root=node_to_proto(rename(node, b""))))
            try:
                first = next(call)
            except grpc.RpcError as e:
                if e.code() == grpc.StatusCode.UNIMPLEMENTED:
                    self._renders = False
                elif e.code() != grpc.StatusCode.NOT_FOUND:
                    raise error_from(e, self._target) from None
            except StopIteration:
                raise BackendError(f"gRPC {self._target}: NarService.Read sent no NAR") from None
            else:
                return self._pieces(call, first)
        return super().nar(castore, node, check_blobs=check_blobs, layout=layout, flush=flush)

    def _pieces(self, call: Iterator[bytes], first: bytes) -> Iterator[bytes]:
        try:
            yield _nar_data(first)
            with rpc_errors(self._target):
                for message in call:
                    yield _nar_data(message)
        finally:
            call.cancel()

    def close(self) -> None:
        channels.release(self._endpoint)


def _nar_data(message: bytes) -> memoryview | bytes:
    """NarPiece.data, a view into the message (a Cairn daemon's are canonical: one field); other
    encodings go through protobuf."""
    try:
        found = fields(memoryview(message))
    except NotCanonical:
        found = None
    if found is not None and len(found) <= 1 and all(n == 1 and type(v) is not int for n, v in found):
        return found[0][1] if found else b""
    return nar_pb.NarPiece.FromString(message).data
