"""What castore's gRPC server and clients share: the error <-> status table, sizes, channels.

Errors cross the wire in one place: the server turns a CastoreError into a status with
`status_for`, a client turns a status back into the same kind of error with `error_from`.
"""

from __future__ import annotations

import contextlib
import threading
from typing import TYPE_CHECKING, Callable, Iterable, Iterator, TypeVar

import grpc

from castore.grouping import grouped
from castore.errors import (BackendError, CastoreError, CorruptionError, NotFoundError,
                            ValidationError)
from castore.url import GrpcEndpoint

if TYPE_CHECKING:
    from castore.proto.rpc_blobbatch_pb2 import BlobHead

T = TypeVar("T")

MESSAGE_CHUNK = 1 << 20
"""Largest data payload we put in one message: well below the 4 MiB other peers accept."""

BLOB_SIZE_KEY = "cairn-blob-size"
"""Trailing metadata of Stat: the blob's size, which StatBlobResponse cannot carry."""

MESSAGE_PARTS = 4096
"""Items (blob parts, directories) gathered into one message at most, besides MESSAGE_CHUNK."""

HAS_MANY_MAX = 1 << 16
"""Digests one HasMany may ask about (2 MiB of them): what a call holds stays bounded."""
MAX_MESSAGE = 64 << 20
"""Receive/send limit we configure, so a peer's larger messages never fail a call."""

CHANNEL_OPTIONS = (
    ("grpc.max_receive_message_length", MAX_MESSAGE),
    ("grpc.max_send_message_length", MAX_MESSAGE),
)

HANDLER_KINDS = {
    (False, False): grpc.unary_unary_rpc_method_handler,
    (False, True): grpc.unary_stream_rpc_method_handler,
    (True, False): grpc.stream_unary_rpc_method_handler,
    (True, True): grpc.stream_stream_rpc_method_handler,
}
"""(request streaming, response streaming) -> the grpcio function that makes such a handler."""


def gathered(items: Iterable[T], size: Callable[[T], int] = len, limit: int = MESSAGE_CHUNK) -> Iterator[list[T]]:
    """Items in groups of at most `limit` bytes (or one larger item) and MESSAGE_PARTS items: a
    message's worth each, so that many small ones do not cost a message each."""
    return grouped(items, size, limit, MESSAGE_PARTS)


def part_sizes(head: BlobHead) -> list[int]:
    """The sizes of the data parts that follow a found blob's head in ReadMany: one per chunk, none
    when the head carries the blob whole, else pieces of MESSAGE_CHUNK."""
    if head.chunks:
        return [c.size for c in head.chunks]
    if head.size <= MESSAGE_CHUNK:
        return []
    whole, rest = divmod(head.size, MESSAGE_CHUNK)
    return [MESSAGE_CHUNK] * whole + ([rest] if rest else [])


def behavior_of(handler: grpc.RpcMethodHandler) -> Callable:
    """The function a method handler runs (grpcio keeps it under an attribute named for its shape)."""
    shape = f"{'stream' if handler.request_streaming else 'unary'}_{'stream' if handler.response_streaming else 'unary'}"
    return getattr(handler, shape)


def same_shape(handler: grpc.RpcMethodHandler, behavior: Callable) -> grpc.RpcMethodHandler:
    """A handler of `handler`'s shape and serializers that runs `behavior` (for interceptors)."""
    make = HANDLER_KINDS[(handler.request_streaming, handler.response_streaming)]
    return make(behavior, request_deserializer=handler.request_deserializer,
                response_serializer=handler.response_serializer)

_STATUS_OF_ERROR: tuple[tuple[type[CastoreError], grpc.StatusCode], ...] = (
    (ValidationError, grpc.StatusCode.INVALID_ARGUMENT),
    (NotFoundError, grpc.StatusCode.NOT_FOUND),
    (CorruptionError, grpc.StatusCode.DATA_LOSS),
    (BackendError, grpc.StatusCode.UNAVAILABLE),
)
_ERROR_OF_STATUS = {code: error for error, code in _STATUS_OF_ERROR}


def status_for(error: CastoreError) -> grpc.StatusCode:
    """The status a server answers with for a castore error."""
    for kind, code in _STATUS_OF_ERROR:
        if isinstance(error, kind):
            return code
    return grpc.StatusCode.INTERNAL


def error_from(error: grpc.RpcError, target: str) -> CastoreError:
    """The castore error a client raises for a failed call (unknown statuses: BackendError)."""
    code = error.code() if isinstance(error, grpc.Call) else grpc.StatusCode.UNKNOWN
    details = (error.details() if isinstance(error, grpc.Call) else None) or str(error)
    kind = _ERROR_OF_STATUS.get(code, BackendError)
    if kind is BackendError:
        return BackendError(f"gRPC {target}: {code.name}: {details}")
    return kind(details)


@contextlib.contextmanager
def rpc_errors(target: str) -> Iterator[None]:
    """Re-raise a failed call as its castore error."""
    try:
        yield
    except grpc.RpcError as e:
        raise error_from(e, target) from None


class SharedChannels:
    """One channel per endpoint per process, counted: the last release closes it.

    A blob and a directory client opened from the same URL then share one connection.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._channels: dict[GrpcEndpoint, tuple[grpc.Channel, int]] = {}

    def acquire(self, endpoint: GrpcEndpoint) -> grpc.Channel:
        with self._lock:
            channel, users = self._channels.get(endpoint) or (open_channel(endpoint), 0)
            self._channels[endpoint] = (channel, users + 1)
            return channel

    def release(self, endpoint: GrpcEndpoint) -> None:
        with self._lock:
            channel, users = self._channels[endpoint]
            if users > 1:
                self._channels[endpoint] = (channel, users - 1)
                return
            del self._channels[endpoint]
        channel.close()


def open_channel(endpoint: GrpcEndpoint) -> grpc.Channel:
    """A channel to `endpoint`: over TLS if it says so, sending its token with every call."""
    if endpoint.tls:
        credentials = grpc.ssl_channel_credentials(root_certificates=endpoint.ca)
        channel = grpc.secure_channel(endpoint.target, credentials, options=CHANNEL_OPTIONS)
    else:
        channel = grpc.insecure_channel(endpoint.target, options=CHANNEL_OPTIONS)
    if endpoint.token is None:
        return channel
    from castore.grpc_auth import BearerToken

    return grpc.intercept_channel(channel, BearerToken(endpoint.token))


channels = SharedChannels()
