"""nar-bridge's Prometheus metrics: `GET /metrics`, and what each request adds to them.

Requests are counted as they are access-logged (see `accesslog`), once their response is
sent (so only by a server `app.run` starts), by route template (`/{hash}.narinfo`, never a
store path), method and status. The store's figures, the bridge's caches and upstream fetches
are read at scrape time (see store.metrics). Each app has a registry of its own: tests run
several apps in one process.
"""

from __future__ import annotations

from typing import Iterator

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, Metric
from prometheus_client.registry import Collector

from nar_bridge.bridge import BRIDGE, Bridge
from store.metrics import store_registry

METHODS = frozenset(("GET", "HEAD", "PUT"))
"""The methods the bridge answers; any other is counted as "other" (labels stay a bounded set)."""
UNMATCHED = "unmatched"
"""The route label of requests no route matched."""
NAR_ROUTES = frozenset(("/nar/{name}", "/nar/{prefix}/{node}"))


class BridgeMetrics:
    """The registry of one bridge, and the request counts the access logger keeps.

    Requests are counted in plain dicts, from the event loop only (where aiohttp calls the
    access logger): a hot narinfo GET costs the bridge about 100 us of CPU, and prometheus
    counters (a lookup of the labelled child, a lock per increment) measured several percent
    of it (see bench/metrics_cost.py). The collector copies the dicts at scrape time (one
    `dict.copy`, atomic under the GIL). Durations are a histogram for NARs only (render time).
    """

    def __init__(self, bridge: Bridge) -> None:
        caches = {"narinfo": bridge.recent_narinfos.lookups, "nar-name": bridge.recent_nars.lookups,
                  "closure": bridge.closures.lookups}
        if bridge.nar_cache is not None:
            caches["nar-cache"] = bridge.nar_cache.lookups
        self.registry = store_registry(bridge.store, caches)
        self._requests: dict[tuple[str, str, int], int] = {}
        self._sent: dict[str, int] = {}
        self._received: dict[str, int] = {}
        self.registry.register(_RequestCollector(self))
        self._nar_seconds = Histogram("cairn_nar_render_seconds", "Time to render and send a NAR (GET, 200 or 206)",
                                      registry=self.registry,
                                      buckets=(.01, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60, 300))

    def observe(self, request: web.BaseRequest, response: web.StreamResponse, seconds: float) -> None:
        """Count a finished request; on the event loop only."""
        route = route_of(request)
        method = request.method if request.method in METHODS else "other"
        key = (route, method, response.status)
        self._requests[key] = self._requests.get(key, 0) + 1
        if bytes_sent := sent_bytes(request, response):
            self._sent[route] = self._sent.get(route, 0) + bytes_sent
        if received := request.content.total_bytes:
            self._received[route] = self._received.get(route, 0) + received
        if route in NAR_ROUTES and method == "GET" and response.status in (200, 206):
            self._nar_seconds.observe(seconds)


class _RequestCollector(Collector):
    def __init__(self, metrics: BridgeMetrics) -> None:
        self._metrics = metrics

    def collect(self) -> Iterator[Metric]:
        m = self._metrics
        requests = CounterMetricFamily("cairn_http_requests", "HTTP requests answered, by route, method and status",
                                       labels=("route", "method", "status"))
        for (route, method, status), count in m._requests.copy().items():
            requests.add_metric((route, method, str(status)), count)
        yield requests
        for name, documentation, counts in (
                ("cairn_http_sent_bytes", "Response bytes sent (headers and body), by route", m._sent),
                ("cairn_http_received_bytes", "Request body bytes received, by route", m._received)):
            family = CounterMetricFamily(name, documentation, labels=("route",))
            for route, count in counts.copy().items():
                family.add_metric((route,), count)
            yield family


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
