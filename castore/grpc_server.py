"""castore's gRPC servicers over any BlobService / DirectoryService, under tvix.* and snix.* names.

Everything from the wire is parsed into validated values here; everything that goes
wrong leaves as a status code chosen by `castore.grpc_common.status_for`, never as a
Python traceback.
"""

from __future__ import annotations

import contextlib
import functools
import logging
from typing import Callable, Iterator

import grpc
from google.protobuf import message_factory
from google.protobuf.descriptor import MethodDescriptor, ServiceDescriptor

from castore.blobs.service import BlobService
from castore.digest import B3Digest
from castore.directories.service import DirectoryService
from castore.errors import CastoreError, NotFoundError, ValidationError
from castore.grpc_common import BLOB_SIZE_KEY, HANDLER_KINDS, MESSAGE_CHUNK, status_for
from castore.nodes import Directory, parse_message
from castore.proto import castore_pb2, rpc_blobstore_pb2 as blob_pb, rpc_directory_pb2 as dir_pb

log = logging.getLogger(__name__)

PACKAGE_PREFIXES = ("tvix.", "snix.")
"""Each service answers under both generations' package names; the messages are identical."""

Register = Callable[[grpc.Server], None]
"""Adds servicers to a server before it starts (what the server runner takes)."""


class BlobServicer:
    """tvix.castore.v1.BlobService over a BlobService."""

    def __init__(self, blobs: BlobService) -> None:
        self._blobs = blobs

    def Stat(self, request: blob_pb.StatBlobRequest, context: grpc.ServicerContext) -> blob_pb.StatBlobResponse:
        digest = B3Digest(request.digest)
        stat = self._blobs.stat(digest)
        if stat is None:
            raise NotFoundError(f"blob {digest} not found")
        context.set_trailing_metadata(((BLOB_SIZE_KEY, str(stat.size)),))
        chunks = stat.chunks if request.send_chunks else ()
        return blob_pb.StatBlobResponse(
            chunks=[blob_pb.StatBlobResponse.ChunkMeta(digest=c.digest, size=c.size) for c in chunks])

    def Read(self, request: blob_pb.ReadBlobRequest, context: grpc.ServicerContext) -> Iterator[blob_pb.BlobChunk]:
        digest = B3Digest(request.digest)
        reader = self._blobs.open_read(digest)
        if reader is None:
            raise NotFoundError(f"blob {digest} not found")
        with reader:
            while data := reader.read(MESSAGE_CHUNK):
                yield blob_pb.BlobChunk(data=data)

    def Put(self, requests: Iterator[blob_pb.BlobChunk], context: grpc.ServicerContext) -> blob_pb.PutBlobResponse:
        with self._blobs.open_write() as writer:
            for chunk in requests:
                writer.write(chunk.data)
            return blob_pb.PutBlobResponse(digest=writer.close())


class DirectoryServicer:
    """tvix.castore.v1.DirectoryService over a DirectoryService."""

    def __init__(self, directories: DirectoryService) -> None:
        self._directories = directories

    def Get(self, request: dir_pb.GetDirectoryRequest, context: grpc.ServicerContext) -> Iterator[castore_pb2.Directory]:
        if request.WhichOneof("by_what") != "digest":
            raise ValidationError("GetDirectoryRequest needs a digest")
        digest = B3Digest(request.digest)
        if request.recursive:
            for directory in self._directories.get_recursive(digest):
                yield directory.to_proto()
            return
        directory = self._directories.get(digest)
        if directory is None:
            raise NotFoundError(f"directory {digest} not found")
        yield directory.to_proto()

    def Put(self, requests: Iterator[castore_pb2.Directory], context: grpc.ServicerContext) -> dir_pb.PutDirectoryResponse:
        root = self._directories.put(numbered(Directory.from_proto(m) for m in requests))
        return dir_pb.PutDirectoryResponse(root_digest=root)


def numbered(directories: Iterator[Directory], before: int = 0) -> Iterator[Directory]:
    """Pass directories through, naming the failing message's position in a ValidationError
    (`before` of them came earlier in the stream)."""
    position = before
    try:
        for position, directory in enumerate(directories, before + 1):
            yield directory
    except ValidationError as e:
        raise ValidationError(f"directory #{position + 1}: {e}") from None


@contextlib.contextmanager
def _statuses(context: grpc.ServicerContext, name: str) -> Iterator[None]:
    """End the call with the status of any error; unexpected ones are logged, not sent."""
    try:
        yield
    except Exception as error:  # noqa: BLE001 - the edge: every error becomes a status
        if not context.is_active():
            raise  # the client went away: nobody to answer
        if isinstance(error, CastoreError):
            context.abort(status_for(error), str(error))
        log.error("%s failed", name, exc_info=error)
        context.abort(grpc.StatusCode.INTERNAL, f"internal error: {type(error).__name__}")


def _guarded(method: Callable, name: str, parse: Callable[[bytes], object], request_streaming: bool,
             response_streaming: bool) -> Callable:
    """`method` taking raw request bytes, which it parses, with every error turned into a status
    (a generator for streaming responses).

    Requests are parsed here rather than by grpcio, which would answer a malformed one with
    INTERNAL: a client's bad bytes are its mistake, INVALID_ARGUMENT.
    """
    def parsed(request):
        return (parse(r) for r in request) if request_streaming else parse(request)

    if response_streaming:
        def call(request, context: grpc.ServicerContext):
            with _statuses(context, name):
                yield from method(parsed(request), context)
    else:
        def call(request, context: grpc.ServicerContext):
            with _statuses(context, name):
                return method(parsed(request), context)
    return functools.wraps(method)(call)


def _handler(method: MethodDescriptor, servicer: object) -> grpc.RpcMethodHandler:
    """A handler for one method, built from its descriptor, with errors mapped to statuses."""
    make = HANDLER_KINDS[(method.client_streaming, method.server_streaming)]
    parse = functools.partial(parse_message, message_factory.GetMessageClass(method.input_type))
    return make(_guarded(getattr(servicer, method.name), method.full_name, parse, method.client_streaming,
                         method.server_streaming),
                response_serializer=_encoded(message_factory.GetMessageClass(method.output_type).SerializeToString))


def _encoded(serialize: Callable[[object], bytes]) -> Callable[[object], bytes]:
    """`serialize`, but a response already encoded (bytes) is sent as it is: NarService encodes
    its megabytes of data itself (a message built and serialized copied each one twice more)."""
    return lambda message: message if type(message) is bytes else serialize(message)


def add_service(server: grpc.Server, service: ServiceDescriptor, servicer: object, *,
                renamed: bool = True) -> None:
    """Serve `servicer` as `service` under every name in PACKAGE_PREFIXES (or, not `renamed`,
    under its own name only: Cairn's extensions).

    `service` is a generated descriptor in the tvix package, e.g.
    `rpc_blobstore_pb2.DESCRIPTOR.services_by_name["BlobService"]`.
    """
    handlers = {m.name: _handler(m, servicer) for m in service.methods}
    for name in served_names(service) if renamed else [service.full_name]:
        server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(name, handlers),))
        server.add_registered_method_handlers(name, handlers)


def served_names(service: ServiceDescriptor) -> list[str]:
    """The full names a tvix service is served under, one per package prefix."""
    _, _, rest = service.full_name.partition(".")
    return [prefix + rest for prefix in PACKAGE_PREFIXES]


CASTORE_SERVICES = (blob_pb.DESCRIPTOR.services_by_name["BlobService"],
                    dir_pb.DESCRIPTOR.services_by_name["DirectoryService"])


def castore_services(blobs: BlobService, directories: DirectoryService) -> Register:
    """The registration that serves both castore services (for the server runner)."""
    from castore.grpc_batch import add_batch_services  # it builds on this module

    def register(server: grpc.Server) -> None:
        blob_service, directory_service = CASTORE_SERVICES
        add_service(server, blob_service, BlobServicer(blobs))
        add_service(server, directory_service, DirectoryServicer(directories))
        add_batch_services(server, blobs, directories)
    return register
