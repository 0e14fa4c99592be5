"""The store's metrics, in process: GC totals that every `cairn gc` adds to, and a read-through
cache's hits and upstream fetches (a far service that fails is a fake: a unit test)."""

from __future__ import annotations

from pathlib import Path

import pytest
from prometheus_client import generate_latest

from castore.errors import BackendError
from castore.url import open_castore
from store import api
from store.gc.collect import collect, status
from store.gc.engine import engine_of
from store.gc.roots import add_root
from store.metrics import store_registry
from store.pathinfo.cache import CachePathInfoService
from store.pathinfo.memory import MemoryPathInfoService
from store.pathinfo.signing import SigningPathInfoService
from store.url import Store, open_store
from tests.scrape import Scrape
from tests.store.test_gc import tree


def scrape(store: Store) -> Scrape:
    return Scrape(generate_latest(store_registry(store)).decode())


def test_gc_runs_and_bytes_freed_add_up_over_runs(tmp_path: Path) -> None:
    with open_store(f"local://{tmp_path}/s") as store:
        kept = api.import_path(store, tree(tmp_path / "kept", "k", files=3))
        api.import_path(store, tree(tmp_path / "gone", "g", files=3))
        add_root(engine_of(store), "r", [kept.store_path])
        assert scrape(store).value("cairn_gc_runs_total") == 0

        collect(store, grace=0, dry_run=True)  # a dry run frees nothing and is not counted
        first = collect(store, grace=0)
        second = collect(store, grace=0)
        counted = scrape(store)
        totals = status(store)

    freed = max(first.before - first.after, 0) + max(second.before - second.after, 0)
    assert first.before - first.after > 50_000  # three files of 50 kB
    assert counted.value("cairn_gc_runs_total") == 2
    assert counted.value("cairn_gc_freed_bytes_total") == freed
    assert counted.value("cairn_store_paths") == 1
    assert (totals["runs"], totals["bytesFreed"]) == (2, freed)


class FailingPathInfos(MemoryPathInfoService):
    def get(self, digest: bytes):
        raise BackendError("upstream down")


@pytest.fixture
def castore():
    with open_castore("memory://") as c:
        yield c


def test_a_read_through_caches_hits_misses_and_upstream_fetches_are_counted(castore, zoo) -> None:
    far = MemoryPathInfoService(castore)
    with open_store("memory://") as scratch:
        info = api.import_path(scratch, zoo)
    far.put(info)
    cache = CachePathInfoService(MemoryPathInfoService(castore), far)
    store = Store(castore, SigningPathInfoService(cache, ()))  # the caches are found through wrappers
    assert cache.get(info.store_path.digest) is not None  # miss, found upstream
    assert cache.get(info.store_path.digest) is not None  # hit
    assert cache.get(bytes(20)) is None  # miss, missing upstream
    counted = scrape(store)
    assert counted.value("cairn_cache_lookups_total", cache="pathinfo-0", result="hit") == 1
    assert counted.value("cairn_cache_lookups_total", cache="pathinfo-0", result="miss") == 2
    assert counted.value("cairn_upstream_fetches_total", result="found") == 1
    assert counted.value("cairn_upstream_fetches_total", result="missing") == 1

    failing = CachePathInfoService(MemoryPathInfoService(castore), FailingPathInfos(castore))
    with pytest.raises(BackendError):
        failing.get(bytes(20))
    assert Scrape(generate_latest(store_registry(Store(castore, failing))).decode()).value(
        "cairn_upstream_fetches_total", result="failed") == 1
