"""DirectoryService client of a remote `tvix.castore.v1.DirectoryService`.

Every received message is parsed into a validated Directory and accepted only if it was
asked for (the root) or referenced by one received before it: a server cannot slip in
directories nobody wanted. A closure comes through Cairn's DirectoryBatchService when the
server has it (many directories per message), else through the recursive Get.
"""

from __future__ import annotations

from typing import Iterable, Iterator

import grpc

from castore.digest import B3Digest
from castore.directories.service import DirectoryService
from castore.errors import CorruptionError, NotFoundError
from castore.grpc_common import channels, error_from, rpc_errors
from castore.nodes import Directory
from castore.proto import rpc_blobbatch_pb2 as batch_pb
from castore.proto import rpc_directory_pb2 as pb
from castore.proto.rpc_blobbatch_pb2_grpc import DirectoryBatchServiceStub
from castore.proto.rpc_directory_pb2_grpc import DirectoryServiceStub
from castore.url import GrpcEndpoint


class GrpcDirectoryService(DirectoryService):
    """Directories of the daemon at a gRPC endpoint (castore.url.grpc_endpoint)."""

    def __init__(self, endpoint: GrpcEndpoint) -> None:
        self._endpoint = endpoint
        self._target = endpoint.target
        self._channel: grpc.Channel | None = channels.acquire(endpoint)
        self._stub = DirectoryServiceStub(self._channel)
        self._batch_stub = DirectoryBatchServiceStub(self._channel)
        self._batched = True  # until the server says it has no DirectoryBatchService

    @property
    def endpoint(self) -> GrpcEndpoint:
        """The daemon's endpoint (a PutMany stream to the same one may carry directories)."""
        return self._endpoint

    def get(self, digest: B3Digest) -> Directory | None:
        try:
            received = list(self._get(digest, recursive=False))
        except NotFoundError:
            return None
        if len(received) != 1 or received[0].digest != digest:
            raise CorruptionError(f"{self._target} answered Get {digest} with {len(received)} "
                                  "messages or the wrong directory")
        return received[0]

    def get_recursive(self, digest: B3Digest) -> Iterator[Directory]:
        """One server-side recursive stream, each message checked against what was referenced."""
        expected = {bytes(digest)}
        received: set[bytes] = set()
        try:
            for directory in self._closure(digest):
                key = bytes(directory.digest)
                if key not in expected:
                    raise CorruptionError(f"{self._target} sent directory {directory.digest}, "
                                          f"which nothing received so far refers to")
                if key in received:
                    continue
                received.add(key)
                expected.update(bytes(c.digest) for c in directory.directories)
                yield directory
        except NotFoundError:
            if received:
                raise
            return  # an unknown root: some servers say NOT_FOUND instead of an empty stream
        if received and received != expected:
            raise NotFoundError(f"{self._target} omitted {len(expected - received)} directories "
                                f"below {digest}")

    def put(self, directories: Iterable[Directory]) -> B3Digest:
        """Send the closure in one stream.

        The closure is collected first: a source that fails half-way must fail before the
        call starts, since a cancelled stream can still reach the server as a complete,
        valid closure of what was sent so far. (Callers hold the directories anyway.)
        """
        messages = [d.to_proto() for d in directories]
        with rpc_errors(self._target):
            response = self._stub.Put(iter(messages))
        root = B3Digest(response.root_digest)
        last = Directory.from_proto(messages[-1]).digest if messages else None
        if root != last:
            raise CorruptionError(f"{self._target} stored root {root}, but we sent {last} last")
        return root

    def close(self) -> None:
        if self._channel is not None:
            self._channel = None
            channels.release(self._endpoint)

    def _closure(self, digest: B3Digest) -> Iterator[Directory]:
        """The closure as the server sends it: through GetClosure, or the recursive Get of a
        server without it (it says so before any directory)."""
        if self._batched:
            call = self._batch_stub.GetClosure(batch_pb.GetClosureRequest(root_digest=B3Digest(digest)))
            try:
                for message in call:
                    for encoded in message.directories:
                        yield Directory.decode(encoded)
                return
            except grpc.RpcError as e:
                if e.code() != grpc.StatusCode.UNIMPLEMENTED:
                    raise error_from(e, self._target) from None
                self._batched = False
            finally:
                call.cancel()
        yield from self._get(digest, recursive=True)

    def _get(self, digest: B3Digest, recursive: bool) -> Iterator[Directory]:
        call = self._stub.Get(pb.GetDirectoryRequest(digest=B3Digest(digest), recursive=recursive))
        try:
            with rpc_errors(self._target):
                for message in call:
                    yield Directory.from_proto(message)
        finally:
            call.cancel()

