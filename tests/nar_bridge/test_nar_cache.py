"""The rendered-NAR cache: bounded, least recently used out, checked against NarHash before it is
kept or (left by an earlier process) served, one render for concurrent requests; and through a
real bridge, a corrupt store still gives a clean error before any header."""

from __future__ import annotations

import hashlib
import os
import threading
import time
from pathlib import Path

import pytest

from castore.digest import B3Digest
from castore.errors import CorruptionError
from castore.local.registry import open_engine
from nar_bridge.nar_cache import NarCache
from castore.nodes import FileNode
from store import api, nixbase32
from store.nar.layout import lay_out
from store.pathinfo.model import PathInfo
from store.storepath import StorePath
from tests.castore.local_store import flip_frame_byte
from tests.conftest import make_zoo

SIZE = 1000


def nar(tag: int) -> tuple[bytes, bytes]:
    """Some bytes standing for a NAR, and their sha256 (its NarHash)."""
    data = bytes([tag]) * SIZE
    return data, hashlib.sha256(data).digest()


class Renders:
    """A render callable that counts its calls."""

    def __init__(self, data: bytes) -> None:
        self.data = data
        self.calls = 0
        self._lock = threading.Lock()

    def __call__(self):
        with self._lock:
            self.calls += 1
        yield self.data[:100]
        yield self.data[100:]


def cached(cache: NarCache, tag: int) -> bytes | None:
    data, sha = nar(tag)
    file = cache.open(sha, len(data))
    if file is None:
        return None
    with file:
        return file.read()


def files(directory: Path) -> list[str]:
    return sorted(os.listdir(directory))


def test_a_nar_is_rendered_once_then_served_from_its_file(tmp_path):
    cache = NarCache(tmp_path, 8 * SIZE)
    data, sha = nar(1)
    render = Renders(data)
    for _ in range(3):
        with cache.serve(sha, SIZE, render) as file:
            assert file.read() == data
    assert render.calls == 1
    assert files(tmp_path) == [sha.hex()]


def test_the_cache_stays_within_its_size_dropping_the_least_recently_used(tmp_path):
    cache = NarCache(tmp_path, 4 * SIZE)
    for tag in range(4):
        data, sha = nar(tag)
        cache.serve(sha, SIZE, Renders(data)).close()
    assert cached(cache, 0) == nar(0)[0]  # 0 is now the most recently used; 1 the least
    data, sha = nar(4)
    cache.serve(sha, SIZE, Renders(data)).close()
    assert cached(cache, 1) is None
    assert all(cached(cache, tag) == nar(tag)[0] for tag in (0, 2, 3, 4))
    assert len(files(tmp_path)) == 4 and sum(p.stat().st_size for p in tmp_path.iterdir()) <= 4 * SIZE


def test_a_nar_too_large_for_the_cache_is_not_cached(tmp_path):
    cache = NarCache(tmp_path, 2 * SIZE)
    assert not cache.fits(SIZE) and cache.fits(SIZE // 2)


def test_a_render_that_is_not_the_nar_is_a_corruption_error_and_leaves_nothing(tmp_path):
    cache = NarCache(tmp_path, 8 * SIZE)
    data, sha = nar(1)
    with pytest.raises(CorruptionError, match="does not hold that NAR intact"):
        cache.serve(sha, SIZE, Renders(nar(2)[0]))
    with pytest.raises(CorruptionError):
        cache.serve(sha, SIZE, Renders(data[:-1]))
    assert files(tmp_path) == [] and cached(cache, 1) is None


def test_a_damaged_file_left_by_an_earlier_process_is_dropped_not_served(tmp_path):
    cache = NarCache(tmp_path, 8 * SIZE)
    data, sha = nar(1)
    cache.serve(sha, SIZE, Renders(data)).close()
    other_data, other_sha = nar(2)
    cache.serve(other_sha, SIZE, Renders(other_data)).close()
    (tmp_path / sha.hex()).write_bytes(nar(3)[0])  # same size, other bytes
    (tmp_path / ".partial-leftover").write_bytes(b"half a NAR")
    reopened = NarCache(tmp_path, 8 * SIZE)
    assert cached(reopened, 1) is None and cached(reopened, 2) == other_data
    render = Renders(data)
    with reopened.serve(sha, SIZE, render) as file:
        assert file.read() == data
    assert render.calls == 1 and files(tmp_path) == sorted([sha.hex(), other_sha.hex()])


def test_concurrent_requests_for_one_nar_share_one_render(tmp_path):
    cache = NarCache(tmp_path, 8 * SIZE)
    data, sha = nar(1)
    render = Renders(data)
    start = threading.Barrier(8)
    bodies: list[bytes] = []

    def serve() -> None:
        start.wait()
        with cache.serve(sha, SIZE, render) as file:
            bodies.append(file.read())

    threads = [threading.Thread(target=serve) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert bodies == [data] * 8 and render.calls == 1


def test_renders_under_way_never_take_the_cache_past_its_size(tmp_path):
    """Eight NARs of a quarter of the cache each asked for while four renders are under way: four
    are cached, the others are answered None (streamed by the caller); the files stay within the bound."""
    cache = NarCache(tmp_path, 4 * SIZE)
    release = threading.Event()
    results: dict[int, bool] = {}

    def serve(tag: int) -> None:
        data, sha = nar(tag)

        def render():
            release.wait(30)  # held until every request has found room or been turned away
            yield data

        file = cache.serve(sha, SIZE, render)
        results[tag] = file is not None
        if file is not None:
            file.close()

    threads = [threading.Thread(target=serve, args=(tag,)) for tag in range(8)]
    for t in threads:
        t.start()
    deadline = time.monotonic() + 30
    while list(results.values()).count(False) < 4 and time.monotonic() < deadline:
        time.sleep(0.01)
    release.set()
    for t in threads:
        t.join()
    assert sorted(results.values()) == [False] * 4 + [True] * 4
    assert len(files(tmp_path)) == 4 and sum(p.stat().st_size for p in tmp_path.iterdir()) == 4 * SIZE


def test_files_not_named_like_a_cached_nar_are_left_alone(tmp_path):
    (tmp_path / "notes.txt").write_bytes(b"x" * (10 * SIZE))
    cache = NarCache(tmp_path, 4 * SIZE)
    data, sha = nar(1)
    with cache.serve(sha, SIZE, Renders(data)) as file:
        assert file.read() == data
    assert (tmp_path / "notes.txt").read_bytes() == b"x" * (10 * SIZE)


@pytest.fixture
def cached_bridge(tmp_path, start_bridge):
    """A bridge with a NAR cache over a local store holding the zoo; (bridge, info, nar, store dir, cache dir)."""
    tree = make_zoo(tmp_path / "zoo", big=(3 << 20) + 5)
    store_dir, cache_dir = tmp_path / "store", tmp_path / "nar-cache"
    with api.open_store(f"local://{store_dir}") as store:
        info = api.import_path(store, tree)
        whole = b"".join(api.dump(store, info.store_path))
    bridge = start_bridge(f"local://{store_dir}", "--nar-cache", str(cache_dir))
    return bridge, info, whole, store_dir, cache_dir


def test_the_bridge_serves_whole_nars_and_ranges_from_its_cache(cached_bridge):
    bridge, info, whole, _, cache_dir = cached_bridge
    path = f"/nar/{nixbase32.encode(info.nar_sha256)}.nar"
    for _ in range(2):
        reply = bridge.get(path, Accept_Encoding="identity")
        assert reply.status == 200 and reply.body == whole
        assert reply.headers["content-length"] == str(len(whole))
    assert files(cache_dir) == [info.nar_sha256.hex()]
    reply = bridge.get(path, Range="bytes=100-200000")
    assert reply.status == 206 and reply.body == whole[100:200001]
    assert reply.headers["content-range"] == f"bytes 100-200000/{len(whole)}"
    zstd = bridge.get(path, Accept_Encoding="zstd")
    assert zstd.status == 200 and zstd.headers["content-encoding"] == "zstd"


def test_a_corrupt_pack_is_a_clean_error_before_any_header_and_nothing_is_cached(cached_bridge, tmp_path):
    bridge, info, _, store_dir, cache_dir = cached_bridge
    engine = open_engine(str(store_dir))
    try:
        record = engine.chunk_record(B3Digest.of((tmp_path / "zoo" / "script.sh").read_bytes()))
    finally:
        engine.close()
    flip_frame_byte(store_dir, record.location)
    reply = bridge.get(f"/nar/{nixbase32.encode(info.nar_sha256)}.nar", Accept_Encoding="identity")
    assert reply.status == 500 and b"chunk" in reply.body and "content-type" in reply.headers
    assert reply.headers["content-type"].startswith("text/plain")
    assert files(cache_dir) == []


def test_missing_contents_are_a_404_before_any_header_and_nothing_is_cached(tmp_path, start_bridge):
    url, cache_dir = f"local://{tmp_path}/store", tmp_path / "nar-cache"
    missing = FileNode(b"", B3Digest(bytes(range(32))), 3)
    path = StorePath(bytes(20), "broken")
    with api.open_store(url) as store:
        store.pathinfo.put(PathInfo(path, missing, lay_out(store.castore.directories, missing).size, bytes(32)))
    bridge = start_bridge(url, "--nar-cache", str(cache_dir))
    reply = bridge.get(f"/nar/{nixbase32.encode(bytes(32))}.nar")
    assert reply.status == 404 and b"not found" in reply.body
    assert files(cache_dir) == []
