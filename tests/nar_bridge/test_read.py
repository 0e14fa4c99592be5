"""The read side over plain HTTP: narinfo, NAR with ranges and zstd, castore URLs, listings, 404s."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import time
from pathlib import Path

import pytest
import zstandard

from castore.api import node_to_text
from castore.ingest import import_path
from castore.nodes import FileNode, rename
from castore.digest import B3Digest
from store import api, nixbase32
from store.narinfo import NarInfo
from store.pathinfo.model import PathInfo
from store.storepath import StorePath
from castore.blobs.memory import MemoryBlobService
from castore.directories.memory import MemoryDirectoryService
from castore.url import CAStore
from nar_bridge.closures import ClosureCache
from nar_bridge.listing import nar_listing
from nar_bridge.nar import ByteRange, nar_body
from store.pathinfo.memory import MemoryPathInfoService
from store.url import Store
from tests.conftest import make_zoo
from tests.nar_bridge.conftest import CAIRN
from tests.store.castores import RecordingDirectories


@pytest.fixture
def served(tmp_path, start_bridge):
    """A bridge over a local store holding the zoo; yields (bridge, info, nar, tree)."""
    tree = make_zoo(tmp_path / "zoo", big=(3 << 20) + 5)
    url = f"local://{tmp_path}/store"
    with api.open_store(url) as store:
        info = api.import_path(store, tree)
        nar = b"".join(api.dump(store, info.store_path))
    return start_bridge(url), info, nar, tree


def nar_path(info: PathInfo) -> str:
    return f"/nar/{nixbase32.encode(info.nar_sha256)}.nar"


def test_cache_info_and_narinfo(served):
    bridge, info, nar, _ = served
    assert bridge.get("/nix-cache-info").body == b"StoreDir: /nix/store\nWantMassQuery: 1\nPriority: 40\n"
    reply = bridge.get(f"/{info.store_path.hash_part}.narinfo")
    narinfo = NarInfo.parse(reply.body)
    assert (narinfo.store_path, narinfo.nar_hash, narinfo.nar_size) == (info.store_path, info.nar_sha256, len(nar))
    assert narinfo.url == nar_path(info)[1:] and narinfo.compression == "none" and narinfo.ca == info.ca
    head = bridge.request("HEAD", f"/{info.store_path.hash_part}.narinfo")
    assert head.status == 200 and head.body == b"" and int(head.headers["content-length"]) == len(reply.body)


def test_the_nar_is_served_whole_with_its_length(served):
    bridge, info, nar, _ = served
    reply = bridge.get(nar_path(info))
    assert reply.status == 200 and reply.body == nar
    assert reply.headers["content-length"] == str(len(nar)) and reply.headers["accept-ranges"] == "bytes"
    assert reply.headers["content-type"] == "application/x-nix-nar"
    head = bridge.request("HEAD", nar_path(info))
    assert head.status == 200 and head.headers["content-length"] == str(len(nar))


def test_many_nars_at_once_take_turns_and_each_is_whole(served):
    """More concurrent renders than the bridge has turns (castore/turns.py), whole and ranged."""
    from concurrent.futures import ThreadPoolExecutor

    bridge, info, nar, _ = served
    ranges = [None, *[(i * 100_003, i * 100_003 + 2_000_000) for i in range(11)]]

    def fetch(byte_range):
        if byte_range is None:
            return bridge.get(nar_path(info)).body == nar
        first, last = byte_range
        return bridge.get(nar_path(info), Range=f"bytes={first}-{last}").body == nar[first:last + 1]

    with ThreadPoolExecutor(12) as pool:
        assert all(pool.map(fetch, ranges * 2))


def test_single_ranges_are_exact(served):
    bridge, info, nar, _ = served
    size = len(nar)
    for header, first, last in [("bytes=0-0", 0, 0), ("bytes=100-65635", 100, 65635),
                                ("bytes=1000000-", 1000000, size - 1), ("bytes=-77", size - 77, size - 1),
                                (f"bytes={size - 10}-{size + 1000}", size - 10, size - 1)]:
        reply = bridge.get(nar_path(info), Range=header, Accept_Encoding="zstd")
        assert reply.status == 206, header
        assert reply.body == nar[first:last + 1], header
        assert reply.headers["content-range"] == f"bytes {first}-{last}/{size}"
        assert "content-encoding" not in reply.headers  # never zstd on a 206
    unsatisfiable = bridge.get(nar_path(info), Range=f"bytes={size}-")
    assert unsatisfiable.status == 416 and unsatisfiable.headers["content-range"] == f"bytes */{size}"
    assert bridge.get(nar_path(info), Range="bytes=0-1,5-9").body == nar  # several ranges: the whole NAR


def test_zstd_transport_compression_when_accepted(served):
    bridge, info, nar, _ = served
    reply = bridge.get(nar_path(info), Accept_Encoding="gzip, zstd")
    assert reply.headers["content-encoding"] == "zstd"
    assert zstandard.ZstdDecompressor().decompressobj().decompress(reply.body) == nar
    assert "content-encoding" not in bridge.get(nar_path(info), Accept_Encoding="zstd;q=0").headers


def test_castore_urls_render_statelessly(served):
    bridge, info, nar, _ = served
    node = node_to_text(rename(info.node, b""))
    for prefix in ("tvix-castore", "snix-castore"):
        reply = bridge.get(f"/nar/{prefix}/{node}?narsize={len(nar)}")
        assert reply.status == 200 and reply.body == nar
    assert bridge.get(f"/nar/tvix-castore/{node}").status == 400  # narsize is required
    wrong = bridge.get(f"/nar/tvix-castore/{node}?narsize={len(nar) + 8}")
    assert wrong.status == 400 and str(len(nar)).encode() in wrong.body  # decided before any header
    assert bridge.get("/nar/tvix-castore/!!!?narsize=1").status == 400
    unknown = FileNode(b"", B3Digest(bytes(32)), 5)
    assert bridge.get(f"/nar/tvix-castore/{node_to_text(unknown)}?narsize=128").status == 404


def test_listing_offsets_point_at_file_contents(served):
    bridge, info, nar, tree = served
    listing = json.loads(bridge.get(f"/{info.store_path.hash_part}.ls").body.decode("utf-8", "surrogateescape"))
    assert listing["version"] == 1
    seen = 0

    def check(entry: dict, path: Path) -> None:
        nonlocal seen
        if entry["type"] == "directory":
            assert sorted(entry["entries"]) == sorted(os.listdir(path))
            for name, child in entry["entries"].items():
                check(child, path / name)
        elif entry["type"] == "symlink":
            assert entry["target"] == os.readlink(path)
        else:
            data = path.read_bytes()
            assert entry["size"] == len(data)
            assert nar[entry["narOffset"]:entry["narOffset"] + len(data)] == data
            assert entry.get("executable", False) == os.access(path, os.X_OK)
            seen += 1

    check(listing["root"], tree)
    assert seen >= 10


def test_a_range_from_the_listing_fetches_exactly_one_file(served):
    bridge, info, _, tree = served
    listing = json.loads(bridge.get(f"/{info.store_path.hash_part}.ls").body.decode("utf-8", "surrogateescape"))
    for name in ("big.bin", "medium.bin", "one-byte", "script.sh"):
        entry = listing["root"]["entries"][name]
        first, last = entry["narOffset"], entry["narOffset"] + entry["size"] - 1
        reply = bridge.get(nar_path(info), Range=f"bytes={first}-{last}")
        assert reply.status == 206 and reply.body == (tree / name).read_bytes(), name


class CountingBlobs(MemoryBlobService):
    def __init__(self) -> None:
        super().__init__()
        self.opened: list[B3Digest] = []

    def open_read(self, digest):
        self.opened.append(digest)
        return super().open_read(digest)


def test_a_ranged_render_reads_no_file_before_the_range(tmp_path):
    tree = make_zoo(tmp_path / "zoo", big=1 << 20)
    blobs = CountingBlobs()
    castore = CAStore(blobs, MemoryDirectoryService())
    with Store(castore, MemoryPathInfoService(castore)) as store:
        info = api.import_path(store, tree)
        nar = b"".join(api.dump(store, info.store_path))
        closures = ClosureCache()
        layout = closures.checked(castore, info.node)
        contents = [(offset, file.size) for offset, file in zip(layout.offsets, layout.files)]
        for first, last in [(len(nar) - 100, len(nar) - 1), (len(nar) // 2, len(nar) // 2 + 70_000), (0, 9)]:
            blobs.opened.clear()
            body = b"".join(nar_body(store, closures, info.node, len(nar), ByteRange(first, last), "none"))
            assert body == nar[first:last + 1]
            overlapping = {file.digest for offset, file in zip(layout.offsets, layout.files)
                           if offset <= last and offset + file.size > first}
            empty = {file.digest for file in layout.files if file.size == 0}
            assert overlapping <= set(blobs.opened) <= overlapping | empty  # exactly the files in the range
        assert len([offset for offset, size in contents if offset + size > len(nar) - 100]) == 1


def test_a_listing_and_the_ranges_read_after_it_share_one_layout(tmp_path):
    """A client reading `.ls`, then one file by Range, costs one fetch of the closure."""
    tree = make_zoo(tmp_path / "zoo", big=1 << 20)
    directories = RecordingDirectories()
    castore = CAStore(MemoryBlobService(), directories)
    node, _ = import_path(castore, tree)
    closures = ClosureCache()
    layout = closures.get(directories, node).layout
    entry = json.loads(nar_listing(layout).decode("utf-8", "surrogateescape"))["root"]["entries"]["medium.bin"]
    first, last = entry["narOffset"], entry["narOffset"] + entry["size"] - 1
    store = Store(castore, MemoryPathInfoService(castore))
    assert b"".join(nar_body(store, closures, node, layout.size, ByteRange(first, last), "none")) == (
        (tree / "medium.bin").read_bytes())
    assert directories.recursive_gets == 1


def test_junk_and_unknown_names_are_404_never_500(served):
    bridge, info, _, _ = served
    unknown = nixbase32.encode(bytes(20))
    for path in ["/junk.narinfo", f"/{unknown}.narinfo", "/eeeeeeeeeeeeeeeeeeeeeeeeeeeeeeee.narinfo",
                 "/" + "a" * 200 + ".narinfo", "/junk.ls", f"/{unknown}.ls", "/nar/junk.nar",
                 f"/nar/{nixbase32.encode(bytes(32))}.nar", f"/nar/{nixbase32.encode(bytes(32))}.nar.xz",
                 "/nar/%00.nar", "/log/junk", "/nothing/here"]:
        assert bridge.get(path).status == 404, path
        assert bridge.request("HEAD", path).status == 404, path
    assert bridge.request("POST", f"/{info.store_path.hash_part}.narinfo").status == 405
    assert "Traceback" not in bridge.log_text()


def test_missing_contents_are_an_error_before_any_header(tmp_path, start_bridge):
    url = f"local://{tmp_path}/store"
    missing = FileNode(b"", B3Digest(bytes(range(32))), 3)
    path = StorePath(bytes(20), "broken")
    with api.open_store(url) as store:
        store.pathinfo.put(PathInfo(path, missing, 128, bytes(32)))
    bridge = start_bridge(url)
    assert bridge.get(f"/{path.hash_part}.narinfo").status == 200
    reply = bridge.get(f"/nar/{nixbase32.encode(bytes(32))}.nar")
    assert reply.status == 404 and b"not found" in reply.body


def test_a_stalled_nar_download_blocks_nothing_else(served):
    bridge, info, nar, _ = served
    with socket.create_connection(("127.0.0.1", bridge.port)) as stalled:
        stalled.sendall(f"GET {nar_path(info)} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
        assert stalled.recv(12) == b"HTTP/1.1 200"  # headers sent; the body now waits on us
        start = time.monotonic()
        for _ in range(20):
            assert bridge.get(f"/{info.store_path.hash_part}.ls").status == 200
        assert time.monotonic() - start < 10


def test_a_stalled_nar_download_is_cut_after_the_stall_timeout(tmp_path, start_bridge):
    """A client that takes nothing of a rendered NAR for --stall-timeout loses its connection, and
    the render it held ends; the same NAR is then served whole to the next client."""
    tree = make_zoo(tmp_path / "zoo", big=48 << 20)  # more than the sockets' buffers hold
    url = f"local://{tmp_path}/store"
    with api.open_store(url) as store:
        info = api.import_path(store, tree)
    bridge = start_bridge(url, "--stall-timeout", "1s")
    with socket.create_connection(("127.0.0.1", bridge.port)) as stalled:
        stalled.sendall(f"GET {nar_path(info)} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
        assert stalled.recv(12) == b"HTTP/1.1 200"
        deadline = time.monotonic() + 60
        while "took nothing for 1 s" not in bridge.log_text():
            assert time.monotonic() < deadline, bridge.log_text()
            time.sleep(0.05)
        received = 0
        try:
            while piece := stalled.recv(1 << 20):
                received += len(piece)
        except ConnectionResetError:
            pass
    assert received < info.nar_size  # the body was cut short: not mistaken for a whole NAR
    reply = bridge.get(nar_path(info))
    assert reply.status == 200 and len(reply.body) == info.nar_size


@pytest.mark.parametrize("value", ["0", "soon"])
def test_a_bad_stall_timeout_is_one_line(value: str, tmp_path) -> None:
    done = subprocess.run([CAIRN, "nar-bridge", "--store", f"local://{tmp_path}/s", "--stall-timeout", value],
                          capture_output=True)
    assert done.returncode != 0 and b"Traceback" not in done.stderr
    assert b"--stall-timeout" in done.stderr.splitlines()[-1]
