"""Watching a gRPC server's calls: a log line per failed call, and (with --metrics) counts.

An interceptor of its own, so it composes with the others a server is given (authentication
goes after it, so refused calls are seen too). The method label is a registered method's
full name (a bounded set): calls of unknown methods never reach a handler and are not counted.
"""

from __future__ import annotations

import logging
import time
from typing import Any, Callable, Iterator

import grpc
from prometheus_client import CollectorRegistry, Counter, Histogram

from castore.grpc_common import behavior_of, same_shape

log = logging.getLogger("cairn.grpc")

class GrpcMetrics:
    """Calls by method and status code, and their durations, in `registry`."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.calls = Counter("cairn_grpc_calls", "gRPC calls finished, by method and status code",
                             ("method", "code"), registry=registry)
        self.seconds = Histogram("cairn_grpc_call_duration_seconds", "gRPC call durations, by method",
                                 ("method",), registry=registry)


class CallObserver(grpc.ServerInterceptor):
    """Logs each call that ends with a status other than OK; counts every call when given metrics."""

    def __init__(self, metrics: GrpcMetrics | None = None) -> None:
        self._metrics = metrics

    def intercept_service(self, continuation: Callable, details: grpc.HandlerCallDetails) -> Any:
        handler = continuation(details)
        if handler is None:
            return None
        behavior = behavior_of(handler)
        observed = self._streaming(behavior, details.method) if handler.response_streaming \
            else self._unary(behavior, details.method)
        return same_shape(handler, observed)

    def _unary(self, behavior: Callable, method: str) -> Callable:
        def call(request: Any, context: grpc.ServicerContext) -> Any:
            start = time.perf_counter()
            try:
                response = behavior(request, context)
            except BaseException:
                self._finished(method, context, start, failed=True)
                raise
            self._finished(method, context, start)
            return response
        return call

    def _streaming(self, behavior: Callable, method: str) -> Callable:
        def call(request: Any, context: grpc.ServicerContext) -> Iterator[Any]:
            start = time.perf_counter()
            try:
                yield from behavior(request, context)
            except GeneratorExit:  # the client went away before the end
                self._finished(method, context, start, code=grpc.StatusCode.CANCELLED)
                raise
            except BaseException:
                self._finished(method, context, start, failed=True)
                raise
            self._finished(method, context, start)
        return call

    def _finished(self, method: str, context: grpc.ServicerContext, start: float, *, failed: bool = False,
                  code: grpc.StatusCode | None = None) -> None:
        seconds = time.perf_counter() - start
        code = code or context.code() or (grpc.StatusCode.UNKNOWN if failed else grpc.StatusCode.OK)
        if self._metrics is not None:
            self._metrics.calls.labels(method, code.name).inc()
            self._metrics.seconds.labels(method).observe(seconds)
        if code is not grpc.StatusCode.OK:
            log.info("%s %s %.1f ms", method, code.name, seconds * 1000,
                     extra={"fields": {"method": method, "code": code.name, "durationMs": round(seconds * 1000, 3)}})
