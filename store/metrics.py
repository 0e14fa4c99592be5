"""Prometheus metrics a store gives any service over it (daemon, nar-bridge): collected at scrape time.

What the store holds (paths, NAR, logical and stored bytes, chunks) and what garbage collection
did comes from `cairn stats`'s figures, which walk the store's records: they are computed at
most once every STATS_SECONDS, and never more often than to spend 1/STATS_SHARE of the time
walking (a large store's walk takes long), however often it is scraped. Read-through caches' hits and
upstream fetches are counts the caches keep (castore.tally). Every metric goes to a registry
the service makes for itself, so several services in one process (tests) do not collide.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from typing import Iterator
from wsgiref.simple_server import WSGIServer

from prometheus_client import CollectorRegistry, start_http_server
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from castore.errors import BackendError, CastoreError
from castore.grpc_observe import CallObserver, GrpcMetrics
from castore.hostport import parse_host_port
from castore.tally import Tally
from store.pathinfo.cache import CachePathInfoService
from store.pathinfo.service import PathInfoService
from store.pathinfo.signing import SigningPathInfoService
from store.stats import StoreStats, store_stats
from store.url import Store

log = logging.getLogger(__name__)

STATS_SECONDS = 15.0
STATS_SHARE = 20


class StoreCollector(Collector):
    """The store's figures and its GC's totals."""

    def __init__(self, store: Store, seconds: float = STATS_SECONDS) -> None:
        self._store = store
        self._seconds = seconds
        self._lock = threading.Lock()
        self._stats: StoreStats | None = None
        self._due = float("-inf")

    def collect(self) -> Iterator[Metric]:
        stats = self._current()
        if stats is None:
            return
        yield _gauge("cairn_store_paths", "Store paths", stats.paths)
        yield _gauge("cairn_store_nar_bytes", "Sum of every path's NAR size", stats.nar_bytes)
        if stats.blobs is not None:
            yield _gauge("cairn_store_logical_bytes", "Bytes of every chunk, each once", stats.blobs.chunk_bytes)
            yield _gauge("cairn_store_stored_bytes", "Bytes on disk: packs and index", stats.blobs.stored_bytes)
            yield _gauge("cairn_store_chunks", "Chunks held", stats.blobs.chunks)
        if stats.gc is not None:
            yield _counter("cairn_gc_runs", "Garbage collections run on this store", stats.gc["runs"])
            yield _counter("cairn_gc_freed_bytes", "Bytes garbage collection gave back", stats.gc["bytesFreed"])

    def _current(self) -> StoreStats | None:
        """The figures, recomputed when older than the period; None when the store does not answer."""
        with self._lock:
            if time.monotonic() >= self._due:
                started = time.monotonic()
                try:
                    self._stats = store_stats(self._store)
                except CastoreError as e:
                    log.warning("store figures for metrics: %s", e)
                    self._stats = None
                took = time.monotonic() - started
                self._due = started + max(self._seconds, STATS_SHARE * took)
            return self._stats


class CacheCollector(Collector):
    """Lookups of named caches ("hit"/"miss") and the read-through caches' upstream fetches."""

    def __init__(self, lookups: dict[str, Tally], pathinfo: PathInfoService) -> None:
        self._lookups = dict(lookups)
        self._caches = list(read_through_caches(pathinfo))
        self._lookups |= {f"pathinfo-{n}": c.lookups for n, c in enumerate(self._caches)}

    def collect(self) -> Iterator[Metric]:
        lookups = CounterMetricFamily("cairn_cache_lookups", "Cache lookups by cache and result (hit, miss)",
                                      labels=("cache", "result"))
        for name, tally in self._lookups.items():
            for result, count in tally.counts().items():
                lookups.add_metric((name, result), count)
        yield lookups
        fetches = CounterMetricFamily("cairn_upstream_fetches",
                                      "Lookups sent to an upstream (far) path info service, by result "
                                      "(found, missing, failed)", labels=("result",))
        totals: dict[str, int] = {}
        for cache in self._caches:
            for result, count in cache.fetches.counts().items():
                totals[result] = totals.get(result, 0) + count
        for result, count in totals.items():
            fetches.add_metric((result,), count)
        yield fetches


def read_through_caches(service: PathInfoService) -> Iterator[CachePathInfoService]:
    """The near/far caches among a path info service and the services it wraps."""
    if isinstance(service, CachePathInfoService):
        yield service
        yield from read_through_caches(service.near)
        yield from read_through_caches(service.far)
    elif isinstance(service, SigningPathInfoService):
        yield from read_through_caches(service.inner)


def store_registry(store: Store, lookups: dict[str, Tally] | None = None) -> CollectorRegistry:
    """A registry of the store's metrics (and of these named caches' lookups)."""
    registry = CollectorRegistry()
    registry.register(StoreCollector(store))
    registry.register(CacheCollector(lookups or {}, store.pathinfo))
    return registry


@contextlib.contextmanager
def daemon_observer(store: Store, listen: str | None) -> Iterator[CallObserver]:
    """The gRPC daemon's call observer; with `listen` (--metrics), counting into a registry of the
    store's metrics served there for as long as the context lasts."""
    if listen is None:
        yield CallObserver()
        return
    registry = store_registry(store)
    server = serve_metrics(listen, registry)
    try:
        yield CallObserver(GrpcMetrics(registry))
    finally:
        server.shutdown()
        server.server_close()


def serve_metrics(listen: str, registry: CollectorRegistry) -> WSGIServer:
    """Serve `registry` at http://HOST:PORT/metrics from a thread of its own; shutdown() stops it."""
    host, port = parse_host_port(listen, "--metrics")
    try:
        server, _ = start_http_server(port, host, registry=registry)
    except OSError as e:
        raise BackendError(f"cannot serve metrics on {listen}: {e.strerror}") from None
    return server


def _gauge(name: str, documentation: str, value: float) -> GaugeMetricFamily:
    return GaugeMetricFamily(name, documentation, value=value)


def _counter(name: str, documentation: str, value: float) -> CounterMetricFamily:
    return CounterMetricFamily(name, documentation, value=value)
