"""The access log: a line per request once its response is sent (method, path, status, bytes,
duration), to the `cairn.access` logger; the same moment counts the request in the metrics.

An aiohttp access logger rather than a middleware: it runs after the response is written, so
it sees the bytes really sent and the status of requests aiohttp refuses before any handler.
"""

from __future__ import annotations

import logging

from aiohttp import web
from aiohttp.abc import AbstractAccessLogger

from nar_bridge.metrics import BridgeMetrics, sent_bytes

ACCESS_LOGGER = logging.getLogger("cairn.access")


def request_log(metrics: BridgeMetrics | None) -> type[AbstractAccessLogger]:
    """The access logger class for a server (aiohttp makes the instance): it also feeds `metrics`."""

    class RequestLog(AbstractAccessLogger):
        def log(self, request: web.BaseRequest, response: web.StreamResponse, time: float) -> None:
            if metrics is not None:
                metrics.observe(request, response, time)
            if not self.logger.isEnabledFor(logging.INFO):
                return
            sent = sent_bytes(request, response)
            ms = time * 1000
            self.logger.info("%s %s %d %d %.1f ms", request.method, request.raw_path, response.status, sent, ms,
                             extra={"fields": {"method": request.method, "path": request.raw_path,
                                               "status": response.status, "bytes": sent,
                                               "received": request.content.total_bytes,
                                               "durationMs": round(ms, 3), "remote": request.remote}})

    return RequestLog
