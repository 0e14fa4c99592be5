"""Who may call what on the daemon: a bearer token and a read-only switch, as a server interceptor;
and the client side, which sends the token with every call.

The token travels in call metadata as `authorization: Bearer <token>` (what gRPC's own access
token credentials send), so other gRPC clients can present it too (`grpcurl -H`). Like the
nar-bridge's `--token-file` and a public attic cache, a token guards writes and leaves reads
open unless asked to guard them too (`for_reads`); the health service always answers, since
load balancers and probes carry no token.

A method is a read only if it is listed in READS: a method added later counts as a write until
someone says otherwise.
"""

from __future__ import annotations

import hmac
from dataclasses import dataclass
from typing import Callable

import grpc

from castore.grpc_common import same_shape

TOKEN_KEY = "authorization"
SCHEME = "Bearer "

READS = frozenset({"BlobService/Stat", "BlobService/Read", "DirectoryService/Get", "PathInfoService/Get",
                   "PathInfoService/List", "PathInfoService/CalculateNAR", "BlobBatchService/ReadMany",
                   "DirectoryBatchService/GetClosure", "NarService/Read",
                   "ServerReflection/ServerReflectionInfo"})
"""Methods that change nothing, named without their package (served as tvix.* and snix.*)."""
OPEN_SERVICES = frozenset({"grpc.health.v1.Health"})
"""Services every caller may use, with or without a token."""


@dataclass(frozen=True)
class Access:
    """The daemon's access policy."""

    token: str | None = None
    """The bearer token calls must carry; None: no token is asked for."""
    for_reads: bool = False
    """Whether reads need the token too (writes always do when there is one)."""
    read_only: bool = False
    """Refuse every write, whoever asks."""

    @property
    def restricted(self) -> bool:
        """Whether any call can be refused (else the server needs no interceptor: one less step per call)."""
        return self.token is not None or self.read_only

    def refusal(self, method: str, metadata: tuple[tuple[str, str | bytes], ...]) -> tuple[grpc.StatusCode, str] | None:
        """Why a call of `method` ("/package.Service/Method") with `metadata` is refused; None: allowed."""
        service, _, name = method.lstrip("/").partition("/")
        if service in OPEN_SERVICES:
            return None
        write = f"{service.rpartition('.')[2]}/{name}" not in READS
        if write and self.read_only:
            return grpc.StatusCode.PERMISSION_DENIED, "this daemon is read-only"
        if self.token is None or not (write or self.for_reads):
            return None
        presented = _presented_token(metadata)
        if presented is None:
            return grpc.StatusCode.UNAUTHENTICATED, f"{method} needs a token (authorization: Bearer ...)"
        if not hmac.compare_digest(presented.encode(), self.token.encode()):
            return grpc.StatusCode.UNAUTHENTICATED, "wrong token"
        return None


def _presented_token(metadata: tuple[tuple[str, str | bytes], ...]) -> str | None:
    for key, value in metadata:
        if key == TOKEN_KEY and isinstance(value, str) and value.startswith(SCHEME):
            return value[len(SCHEME):]
    return None


class AccessInterceptor(grpc.ServerInterceptor):
    """Applies an Access policy before any servicer runs."""

    def __init__(self, access: Access) -> None:
        self._access = access

    def intercept_service(self, continuation: Callable, details: grpc.HandlerCallDetails) -> grpc.RpcMethodHandler | None:
        handler = continuation(details)
        if handler is None:
            return None  # unknown method: UNIMPLEMENTED, as without us
        refused = self._access.refusal(details.method, tuple(details.invocation_metadata or ()))
        return handler if refused is None else _refusing(handler, *refused)


def _refusing(handler: grpc.RpcMethodHandler, code: grpc.StatusCode, details: str) -> grpc.RpcMethodHandler:
    """A handler of the same shape as `handler` that ends the call with `code`, reading nothing."""
    def refuse(request, context: grpc.ServicerContext):
        context.abort(code, details)

    return same_shape(handler, refuse)


class BearerToken(grpc.UnaryUnaryClientInterceptor, grpc.UnaryStreamClientInterceptor,
                  grpc.StreamUnaryClientInterceptor, grpc.StreamStreamClientInterceptor):
    """Adds the token to the metadata of every call on a client channel."""

    def __init__(self, token: str) -> None:
        self._metadata = ((TOKEN_KEY, SCHEME + token),)

    def _details(self, details: grpc.ClientCallDetails) -> grpc.ClientCallDetails:
        return details._replace(metadata=tuple(details.metadata or ()) + self._metadata)

    def intercept_unary_unary(self, continuation, details, request):
        return continuation(self._details(details), request)

    def intercept_unary_stream(self, continuation, details, request):
        return continuation(self._details(details), request)

    def intercept_stream_unary(self, continuation, details, requests):
        return continuation(self._details(details), requests)

    def intercept_stream_stream(self, continuation, details, requests):
        return continuation(self._details(details), requests)
