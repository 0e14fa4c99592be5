"""Calls that wait on a stalled client are cancelled, as nginx's send_timeout and
client_body_timeout end a stalled connection.

A gRPC worker thread serves one call for the whole of it, and the pool is bounded: a client that
stops taking a stream's responses (or stops sending a stream's requests) would hold its thread,
and the frames its render holds, for ever. Sixteen such clients stopped a daemon for everyone,
its health check included (measured: the seventeenth call never started). So each time a call
waits on its client, between two messages, is bounded: a response stream suspended while its
client does not take the next message, or a request stream waiting for the client's next message,
for longer than `timeout` is cancelled. The client sees CANCELLED; the thread goes back to the
pool and the render's generator is closed. A slow client that keeps taking messages is never cut,
and neither is a call that is slow on the server's side.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from typing import Any, Callable, Iterator

import grpc

from castore.durations import STALL_TIMEOUT
from castore.grpc_common import behavior_of, same_shape

log = logging.getLogger("cairn.grpc")


class StallGuard(grpc.ServerInterceptor):
    """Cancels a streaming call once it has waited on its client for longer than `timeout` seconds."""

    def __init__(self, timeout: float = STALL_TIMEOUT) -> None:
        if not timeout > 0:
            raise ValueError(f"a stall timeout must be positive, got {timeout}")
        self._timeout = timeout
        self._lock = threading.Lock()
        self._calls: dict[int, _Call] = {}
        """The streaming calls under way, by id: what the watchdog looks at."""
        self._watchdog: threading.Thread | None = None
        self.cancelled = 0
        """Calls cancelled so far (for tests and logs)."""

    def intercept_service(self, continuation: Callable, details: grpc.HandlerCallDetails) -> Any:
        handler = continuation(details)
        if handler is None or not (handler.request_streaming or handler.response_streaming):
            return handler
        behavior = behavior_of(handler)
        method = details.method
        if handler.response_streaming:
            def guarded(request: Any, context: grpc.ServicerContext) -> Any:
                with self._watched(context, method) as call:
                    if handler.request_streaming:
                        request = _requests(request, call)
                    with contextlib.closing(behavior(request, context)) as responses:
                        for response in responses:
                            call.since = time.monotonic()
                            yield response  # suspended until grpcio has sent it: the client took it
                            call.since = None
        else:
            def guarded(request: Any, context: grpc.ServicerContext) -> Any:
                with self._watched(context, method) as call:
                    return behavior(_requests(request, call), context)
        return same_shape(handler, guarded)

    @contextlib.contextmanager
    def _watched(self, context: grpc.ServicerContext, method: str) -> Iterator[_Call]:
        call = _Call(context, method)
        with self._lock:
            self._calls[id(call)] = call
            if self._watchdog is None:
                self._watchdog = threading.Thread(target=self._watch, name="grpc-stalls", daemon=True)
                self._watchdog.start()
        try:
            yield call
        finally:
            with self._lock:
                del self._calls[id(call)]

    def _watch(self) -> None:
        """Cancel the calls waiting for longer than the timeout, checking a few times per timeout;
        gone once no streaming call is left (the next one starts it again)."""
        while True:
            time.sleep(min(1.0, self._timeout / 4))
            deadline = time.monotonic() - self._timeout
            with self._lock:
                calls = list(self._calls.values())
                if not calls:
                    self._watchdog = None
                    return
            for call in calls:
                since = call.since
                if since is None or since > deadline:
                    continue
                call.since = None
                self.cancelled += 1
                log.warning("%s cancelled: its client took or sent nothing for %g s (peer %s)", call.method,
                            self._timeout, call.context.peer(),
                            extra={"fields": {"method": call.method, "stallSeconds": self._timeout}})
                call.context.cancel()


class _Call:
    """One streaming call: since when it has been waiting on its client (None: it is not)."""

    __slots__ = ("context", "method", "since")

    def __init__(self, context: grpc.ServicerContext, method: str) -> None:
        self.context = context
        self.method = method
        self.since: float | None = None


def _requests(requests: Iterator[Any], call: _Call) -> Iterator[Any]:
    """The request stream, with the waits for each next message marked on `call`."""
    while True:
        call.since = time.monotonic()
        request = next(requests, _END)
        call.since = None
        if request is _END:
            return
        yield request


_END = object()
