"""nar-bridge's Prometheus metrics: `GET /metrics`, and what each request adds to them.

Requests are counted as they are access-logged (see `accesslog`), once their response is
sent (so only by a server `app.run` starts), by route template (`/{hash}.narinfo`, never a store path), method and status. The
store's figures, the bridge's caches and upstream fetches are read at scrape time (see
store.metrics). Each app has a registry of its own: tests run several apps in one process.
"""

from __future__ import annotations

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, Counter, Histogram, generate_latest

from nar_bridge.bridge import BRIDGE, Bridge
from store.metrics import store_registry

METHODS = frozenset(("GET", "HEAD", "PUT"))
"""The methods the bridge answers; any other is counted as "other" (labels stay a bounded set)."""
UNMATCHED = "unmatched"
"""The route label of requests no route matched."""
NAR_ROUTES = frozenset(("/nar/{name}", "/nar/{prefix}/{node}"))


class BridgeMetrics:
    """The registry of one bridge and the instruments requests update."""

    def __init__(self, bridge: Bridge) -> None:
        self.registry = store_registry(bridge.store, {"narinfo": bridge.recent_narinfos.lookups,
                                                      "closure": bridge.closures.lookups})
        r = self.registry
        self.requests = Counter("cairn_http_requests", "HTTP requests answered, by route, method and status",
                                ("route", "method", "status"), registry=r)
        self.sent = Counter("cairn_http_sent_bytes", "Response body bytes sent, by route", ("route",), registry=r)
        self.received = Counter("cairn_http_received_bytes", "Request body bytes received, by route", ("route",),
                                registry=r)
        self.seconds = Histogram("cairn_http_request_duration_seconds", "Time to answer a request, by route",
                                 ("route",), registry=r)
        self.nar_seconds = Histogram("cairn_nar_render_seconds", "Time to render and send a NAR (GET, 200 or 206)",
                                     registry=r, buckets=(.01, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60, 300))

    def observe(self, request: web.BaseRequest, response: web.StreamResponse, seconds: float) -> None:
        route = route_of(request)
        method = request.method if request.method in METHODS else "other"
        self.requests.labels(route, method, str(response.status)).inc()
        self.seconds.labels(route).observe(seconds)
        if response.body_length:
            self.sent.labels(route).inc(response.body_length)
        received = request.content.total_bytes
        if received:
            self.received.labels(route).inc(received)
        if route in NAR_ROUTES and method == "GET" and response.status in (200, 206):
            self.nar_seconds.observe(seconds)


def route_of(request: web.BaseRequest) -> str:
    """The template of the route that answered, e.g. `/{hash}.narinfo`."""
    try:
        resource = request.match_info.route.resource  # type: ignore[attr-defined]
    except (AttributeError, AssertionError):  # refused before routing (a malformed request)
        return UNMATCHED
    return UNMATCHED if resource is None else resource.canonical


METRICS = web.AppKey("metrics", BridgeMetrics)


async def get_metrics(request: web.Request) -> web.Response:
    """The text exposition; collected on a worker (the store's figures block)."""
    body = await request.app[BRIDGE].workers.call(generate_latest, request.app[METRICS].registry)
    return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})
