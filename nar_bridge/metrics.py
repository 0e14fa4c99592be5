"""nar-bridge's Prometheus metrics: `GET /metrics`, and what each request adds to them.

Requests are counted as they are access-logged (see `accesslog`), once their response is
sent (so only by a server `app.run` starts), by route template (`/{hash}.narinfo`, never a
store path), method and status. The store's figures, the bridge's caches and upstream fetches
are read at scrape time (see store.metrics). Each app has a registry of its own: tests run several apps in one process.
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
    """The registry of one bridge and the instruments requests update.

    A request costs a dict lookup and two or three increments: the labelled children are
    kept per (route, method, status), since looking them up each time costs more than the
    counting (see bench/metrics_cost.py). Durations are a histogram for NARs only, where they
    tell something (render time); per route they would double the cost of a narinfo GET.
    """

    def __init__(self, bridge: Bridge) -> None:
        caches = {"narinfo": bridge.recent_narinfos.lookups, "nar-name": bridge.recent_nars.lookups,
                  "closure": bridge.closures.lookups}
        if bridge.nar_cache is not None:
            caches["nar-cache"] = bridge.nar_cache.lookups
        self.registry = store_registry(bridge.store, caches)
        r = self.registry
        self._requests = Counter("cairn_http_requests", "HTTP requests answered, by route, method and status",
                                 ("route", "method", "status"), registry=r)
        self._sent = Counter("cairn_http_sent_bytes", "Response bytes sent (headers and body), by route", ("route",), registry=r)
        self._received = Counter("cairn_http_received_bytes", "Request body bytes received, by route", ("route",),
                                 registry=r)
        self._nar_seconds = Histogram("cairn_nar_render_seconds", "Time to render and send a NAR (GET, 200 or 206)",
                                      registry=r, buckets=(.01, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60, 300))
        self._children: dict[tuple[str, str, int], tuple[Counter, Counter, Counter]] = {}

    def observe(self, request: web.BaseRequest, response: web.StreamResponse, seconds: float) -> None:
        route = route_of(request)
        method = request.method if request.method in METHODS else "other"
        key = (route, method, response.status)
        children = self._children.get(key)
        if children is None:
            children = self._children[key] = (self._requests.labels(route, method, str(response.status)),
                                              self._sent.labels(route), self._received.labels(route))
        requests, sent, received = children
        requests.inc()
        if bytes_sent := sent_bytes(request, response):
            sent.inc(bytes_sent)
        if request.content.total_bytes:
            received.inc(request.content.total_bytes)
        if route in NAR_ROUTES and method == "GET" and response.status in (200, 206):
            self._nar_seconds.observe(seconds)


def sent_bytes(request: web.BaseRequest, response: web.StreamResponse) -> int:
    """Bytes of the response (headers and body). aiohttp counts what goes through its writer, not
    what the kernel sends by sendfile (a NAR from the NAR cache): then the body's Content-Length,
    which is an overcount only for a client that went away in the middle."""
    if request.method == "HEAD" or response.content_length is None:
        return response.body_length
    return max(response.body_length, response.content_length)


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
