"""Streams take slots, so calls that are not streams always find a worker.

grpcio's synchronous server runs every call in one bounded pool of threads, and a stream holds its
thread for all of its length: sixteen long streams (NARs of a gigabyte taking turns, FUSE reads
of large files) made every other call wait for one of them to end, health checks included, and a
probe that waits is a daemon marked down under load. nar-bridge keeps two pools for this reason;
grpcio allows one. So the pool is large (its threads are started only as calls need them) and
streams take one of fewer slots for their length: a stream that finds none waits in its worker,
asleep, and the workers left answer everything else. The slots bound what the streams hold at once
(a render's frames, a stream's buffers). Health watches and reflection streams wait rather than
work, and take no slot.
"""

from __future__ import annotations

import threading
from typing import Any, Callable

import grpc

from castore.grpc_common import behavior_of, same_shape

WAITING_SERVICES = frozenset({"grpc.health.v1.Health", "grpc.reflection.v1alpha.ServerReflection"})
"""Services whose streams wait for events or questions: they hold a worker, not a slot."""


class StreamSlots(grpc.ServerInterceptor):
    """At most `slots` streaming calls run at once; the others wait for a slot."""

    def __init__(self, slots: int) -> None:
        if slots < 1:
            raise ValueError(f"streams need a slot at least, got {slots}")
        self._slots = threading.Semaphore(slots)

    def intercept_service(self, continuation: Callable, details: grpc.HandlerCallDetails) -> Any:
        handler = continuation(details)
        if handler is None or not (handler.request_streaming or handler.response_streaming) \
                or details.method.lstrip("/").partition("/")[0] in WAITING_SERVICES:
            return handler
        behavior = behavior_of(handler)
        if handler.response_streaming:
            def slotted(request: Any, context: grpc.ServicerContext) -> Any:
                with self._slots:
                    yield from behavior(request, context)
        else:
            def slotted(request: Any, context: grpc.ServicerContext) -> Any:
                with self._slots:
                    return behavior(request, context)
        return same_shape(handler, slotted)
