"""The rendered-NAR cache: bounded, least recently used out, checked against NarHash before it is
kept or (left by an earlier process) served, one render for concurrent requests; and through a
real bridge, a corrupt store still gives a clean error before any header."""

from __future__ import annotations

import hashlib
import http.client
import os
import shutil
import socket
import threading
import time
from pathlib import Path
from typing import Iterator

import pytest

from castore.digest import B3Digest
from castore.errors import CorruptionError
from nar_bridge.nar_cache import Fill, NarCache, teed
from castore.nodes import FileNode
from store import api, nixbase32
from store.nar.layout import lay_out
from store.pathinfo.model import PathInfo
from store.storepath import StorePath
from tests.castore.local_store import flip_byte_of_chunk
from tests.conftest import make_zoo

SIZE = 1000


def nar(tag: int) -> tuple[bytes, bytes]:
    """Some bytes standing for a NAR, and their sha256 (its NarHash)."""
    data = bytes([tag]) * SIZE
    return data, hashlib.sha256(data).digest()


def render(data: bytes) -> Iterator[bytes]:
    """A render in two pieces, as the bridge's renders come in several."""
    yield data[:100]
    yield data[100:]


def served(cache: NarCache, tag: int, data: bytes | None = None) -> bytes:
    """What a request for NAR `tag` gets: the cached file's bytes, or a render (`data`, else the
    NAR's own bytes) teed into the cache when lookup hands out a Fill."""
    wanted, sha = nar(tag)
    found = cache.lookup(sha, SIZE)
    if found is None or isinstance(found, Fill):
        pieces = render(wanted if data is None else data)
        return b"".join(pieces if found is None else teed(pieces, found))
    with found:
        return found.read()


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
    assert served(cache, 1) == data
    for _ in range(3):
        found = cache.lookup(sha, SIZE)
        assert not isinstance(found, Fill) and found is not None
        with found as file:
            assert file.read() == data
    assert files(tmp_path) == [sha.hex()]
    assert cache.lookups.counts() == {"miss": 1, "hit": 3}


def test_the_cache_stays_within_its_size_dropping_the_least_recently_used(tmp_path):
    cache = NarCache(tmp_path, 4 * SIZE)
    for tag in range(4):
        served(cache, tag)
    assert cached(cache, 0) == nar(0)[0]  # 0 is now the most recently used; 1 the least
    served(cache, 4)
    assert cached(cache, 1) is None
    assert all(cached(cache, tag) == nar(tag)[0] for tag in (0, 2, 3, 4))
    assert len(files(tmp_path)) == 4 and sum(p.stat().st_size for p in tmp_path.iterdir()) <= 4 * SIZE


def test_a_nar_too_large_for_the_cache_is_not_cached(tmp_path):
    cache = NarCache(tmp_path, 2 * SIZE)
    assert not cache.fits(SIZE) and cache.fits(SIZE // 2)


def test_a_render_that_is_not_the_nar_is_a_corruption_error_and_leaves_nothing(tmp_path):
    cache = NarCache(tmp_path, 8 * SIZE)
    data, sha = nar(1)
    for wrong in (nar(2)[0], data[:-1]):
        received = []
        with pytest.raises(CorruptionError, match="does not hold that NAR intact"):
            received.extend(teed(render(wrong), cache.lookup(sha, SIZE)))
        assert b"".join(received) == wrong[:100]  # the last piece is held back: never a whole body
    assert files(tmp_path) == [] and cached(cache, 1) is None
    assert served(cache, 1) == data and cached(cache, 1) == data  # its room was given back


def test_a_render_stopped_early_leaves_nothing_and_gives_its_room_back(tmp_path):
    cache = NarCache(tmp_path, 4 * SIZE)
    data, sha = nar(1)
    stream = teed(render(data), cache.lookup(sha, SIZE))
    assert next(stream) == data[:100]
    stream.close()  # the client went away
    assert files(tmp_path) == [] and cached(cache, 1) is None
    assert all(served(cache, tag) == nar(tag)[0] for tag in range(1, 5))
    assert all(cached(cache, tag) == nar(tag)[0] for tag in range(1, 5))


def test_a_render_the_cache_cannot_keep_still_streams_whole_and_gives_its_room_back(tmp_path):
    directory = tmp_path / "cache"
    cache = NarCache(directory, 4 * SIZE)
    data, sha = nar(1)
    fill = cache.lookup(sha, SIZE)
    shutil.rmtree(directory)  # the rename into the cache fails
    assert b"".join(teed(render(data), fill)) == data
    directory.mkdir()
    assert cached(cache, 1) is None
    assert served(cache, 1) == data and cached(cache, 1) == data


def test_a_damaged_file_left_by_an_earlier_process_is_dropped_not_served(tmp_path):
    cache = NarCache(tmp_path, 8 * SIZE)
    data, sha = nar(1)
    served(cache, 1)
    other_data, other_sha = nar(2)
    served(cache, 2)
    (tmp_path / sha.hex()).write_bytes(nar(3)[0])  # same size, other bytes
    (tmp_path / ".partial-leftover").write_bytes(b"half a NAR")
    reopened = NarCache(tmp_path, 8 * SIZE)
    assert cached(reopened, 1) is None and cached(reopened, 2) == other_data
    assert served(reopened, 1) == data  # rendered again, and cached
    assert cached(reopened, 1) == data and files(tmp_path) == sorted([sha.hex(), other_sha.hex()])
    assert reopened.lookups.counts() == {"miss": 1}


def test_concurrent_first_requests_for_one_nar_fill_the_cache_once(tmp_path):
    """One of them gets the Fill; the others stream their own render, uncached."""
    cache = NarCache(tmp_path, 8 * SIZE)
    data, sha = nar(1)
    start = threading.Barrier(8)
    found: list[object] = []

    def lookup() -> None:
        start.wait()
        found.append(cache.lookup(sha, SIZE))

    threads = [threading.Thread(target=lookup) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    fills = [f for f in found if isinstance(f, Fill)]
    assert len(fills) == 1 and found.count(None) == 7
    assert b"".join(teed(render(data), fills[0])) == data
    assert files(tmp_path) == [sha.hex()] and cached(cache, 1) == data


def test_renders_under_way_never_take_the_cache_past_its_size(tmp_path):
    """Eight NARs of a quarter of the cache each asked for while the first renders are under way:
    four get room and are cached, the others are answered None (streamed by the caller); the files
    stay within the bound."""
    cache = NarCache(tmp_path, 4 * SIZE)
    found = [cache.lookup(nar(tag)[1], SIZE) for tag in range(8)]
    assert [isinstance(f, Fill) for f in found] == [True] * 4 + [False] * 4 and found[4:] == [None] * 4
    for tag, fill in enumerate(found[:4]):
        assert b"".join(teed(render(nar(tag)[0]), fill)) == nar(tag)[0]
    assert len(files(tmp_path)) == 4 and sum(p.stat().st_size for p in tmp_path.iterdir()) == 4 * SIZE


def test_files_not_named_like_a_cached_nar_are_left_alone(tmp_path):
    (tmp_path / "notes.txt").write_bytes(b"x" * (10 * SIZE))
    cache = NarCache(tmp_path, 4 * SIZE)
    data, _ = nar(1)
    assert served(cache, 1) == data and cached(cache, 1) == data
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


def fetch(bridge, path: str) -> tuple[int, bytes, bool]:
    """A GET's status, the body bytes received, and whether the body was whole (not cut off)."""
    conn = http.client.HTTPConnection("127.0.0.1", bridge.port, timeout=60)
    try:
        conn.request("GET", path, headers={"Accept-Encoding": "identity"})
        response = conn.getresponse()
        try:
            return response.status, response.read(), True
        except http.client.IncompleteRead as e:
            return response.status, e.partial, False
    finally:
        conn.close()


def test_a_first_get_streams_the_render_and_the_next_is_sent_from_the_cache(cached_bridge):
    bridge, info, whole, _, cache_dir = cached_bridge
    path = f"/nar/{nixbase32.encode(info.nar_sha256)}.nar"
    assert fetch(bridge, path) == (200, whole, True)
    assert files(cache_dir) == [info.nar_sha256.hex()]  # kept before its last piece was sent
    marked = bytes(len(whole))  # the file this process wrote is sent without hashing it again:
    (cache_dir / info.nar_sha256.hex()).write_bytes(marked)  # what comes next can only be the file
    assert fetch(bridge, path) == (200, marked, True)


def test_head_and_ranges_of_a_nar_not_cached_yet_are_answered_as_before_and_cache_nothing(cached_bridge):
    bridge, info, whole, _, cache_dir = cached_bridge
    path = f"/nar/{nixbase32.encode(info.nar_sha256)}.nar"
    head = bridge.request("HEAD", path, headers={"Accept-Encoding": "identity"})
    assert head.status == 200 and head.body == b"" and head.headers["content-length"] == str(len(whole))
    reply = bridge.get(path, Range="bytes=100-200000")
    assert reply.status == 206 and reply.body == whole[100:200001]
    assert reply.headers["content-range"] == f"bytes 100-200000/{len(whole)}"
    assert files(cache_dir) == []


def test_a_corrupt_chunk_after_the_first_piece_aborts_the_first_get_and_nothing_is_cached(cached_bridge, tmp_path):
    bridge, info, whole, store_dir, cache_dir = cached_bridge
    flip_byte_of_chunk(store_dir, (tmp_path / "zoo" / "script.sh").read_bytes())  # after big.bin in the NAR
    for _ in range(2):
        status, body, complete = fetch(bridge, f"/nar/{nixbase32.encode(info.nar_sha256)}.nar")
        assert status == 200 and not complete and whole.startswith(body) and len(body) < len(whole)
        assert files(cache_dir) == []
    assert "does not match its digest" in bridge.log_text()


def test_a_corrupt_chunk_in_the_first_piece_is_a_clean_error_before_any_header_and_nothing_is_cached(
        tmp_path, start_bridge):
    (tmp_path / "tree").mkdir()
    (tmp_path / "tree" / "only").write_bytes(b"a small file\n" * 100)
    store_dir, cache_dir = tmp_path / "store", tmp_path / "nar-cache"
    with api.open_store(f"local://{store_dir}") as store:
        info = api.import_path(store, tmp_path / "tree")
    flip_byte_of_chunk(store_dir, (tmp_path / "tree" / "only").read_bytes())
    bridge = start_bridge(f"local://{store_dir}", "--nar-cache", str(cache_dir))
    reply = bridge.get(f"/nar/{nixbase32.encode(info.nar_sha256)}.nar", Accept_Encoding="identity")
    assert reply.status == 500 and b"chunk" in reply.body and "content-type" in reply.headers
    assert reply.headers["content-type"].startswith("text/plain")
    assert files(cache_dir) == []


def test_a_client_gone_mid_body_leaves_no_cache_entry_or_a_whole_one(tmp_path, start_bridge):
    tree = make_zoo(tmp_path / "zoo", big=64 << 20)  # far more than the channel and socket buffers hold
    store_dir, cache_dir = tmp_path / "store", tmp_path / "nar-cache"
    with api.open_store(f"local://{store_dir}") as store:
        info = api.import_path(store, tree)
        whole = b"".join(api.dump(store, info.store_path))
    bridge = start_bridge(f"local://{store_dir}", "--nar-cache", str(cache_dir))
    path = f"/nar/{nixbase32.encode(info.nar_sha256)}.nar"
    with socket.create_connection(("127.0.0.1", bridge.port)) as client:
        client.sendall(f"GET {path} HTTP/1.1\r\nHost: x\r\nAccept-Encoding: identity\r\n\r\n".encode())
        assert client.recv(1 << 16).startswith(b"HTTP/1.1 200")
    deadline = time.monotonic() + 60  # a wait for the render to stop, not a timed assertion
    while any(name.startswith(".partial-") for name in files(cache_dir)) and time.monotonic() < deadline:
        time.sleep(0.05)
    left = files(cache_dir)
    assert left in ([], [info.nar_sha256.hex()])
    if left:
        assert (cache_dir / left[0]).read_bytes() == whole
    assert fetch(bridge, path) == (200, whole, True)
    assert files(cache_dir) == [info.nar_sha256.hex()]


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
