"""Trees of awkward shapes over real HTTP: a deep tree's `.ls` (once a 500: the JSON encoder's
recursion limit), and NARs past the limits of castore.limits refused with a 400 saying which."""

from __future__ import annotations

import hashlib
import io
import lzma

from castore.limits import MAX_DEPTH_ENV, MAX_ENTRIES_ENV
from store import nixbase32
from store.nar.events import DIRECTORY_END, DIRECTORY_START, Entry, RegularFile
from store.nar.writer import write_nar
from store.narinfo import NarInfo
from store.storepath import StorePath
from nar_bridge.names import NarFile


def deep_nar(depth: int) -> bytes:
    """`depth` directories named "d" inside one another, the last one empty."""
    events = [DIRECTORY_START, Entry(b"d")] * depth + [DIRECTORY_START] + [DIRECTORY_END] * (depth + 1)
    return b"".join(write_nar(events))


def wide_nar(entries: int) -> bytes:
    """One directory of `entries` empty files."""
    events = [DIRECTORY_START]
    for i in range(entries):
        events += [Entry(b"%07d" % i), RegularFile(0, False, io.BytesIO())]
    return b"".join(write_nar(events + [DIRECTORY_END]))


def upload(bridge, nar: bytes, name: str):
    """PUT the NAR as xz, then its narinfo; both replies."""
    body = lzma.compress(nar)
    nar_file = NarFile(hashlib.sha256(body).digest(), "xz")
    path = StorePath(hashlib.sha256(nar).digest()[:20], name)
    narinfo = NarInfo(store_path=path, url=nar_file.url, nar_hash=hashlib.sha256(nar).digest(),
                      nar_size=len(nar), compression="xz")
    return path, bridge.put(f"/{nar_file.url}", body), bridge.put(f"/{path.hash_part}.narinfo",
                                                                  narinfo.render().encode())


def test_the_listing_of_a_3000_level_tree_from_a_tiny_upload_is_served(start_bridge):
    bridge = start_bridge()
    nar = deep_nar(3000)
    assert len(lzma.compress(nar)) < 1024
    path, put_nar, put_narinfo = upload(bridge, nar, "deep")
    assert (put_nar.status, put_narinfo.status) == (200, 200), (put_nar.body, put_narinfo.body)
    reply = bridge.get(f"/{path.hash_part}.ls")
    assert reply.status == 200, reply.body[:300]
    directory = b'{"type":"directory","entries":{'
    assert reply.body == b'{"version":1,"root":' + (directory + b'"d":') * 3000 + directory + b"}}" * 3001 + b"}"
    served = bridge.get(f"/nar/{nixbase32.encode(hashlib.sha256(nar).digest())}.nar")
    assert served.status == 200 and served.body == nar


def test_a_nar_deeper_than_the_limit_is_refused_with_a_400(start_bridge, monkeypatch):
    monkeypatch.setenv(MAX_DEPTH_ENV, "100")
    bridge = start_bridge()
    _, put_nar, _ = upload(bridge, deep_nar(100), "deep-ok")
    assert put_nar.status == 200, put_nar.body
    _, put_nar, _ = upload(bridge, deep_nar(101), "deep-refused")
    assert put_nar.status == 400 and b"more than 100 levels deep" in put_nar.body, put_nar.body
    assert MAX_DEPTH_ENV.encode() in put_nar.body


def test_a_directory_wider_than_the_limit_is_refused_with_a_400(start_bridge, monkeypatch):
    monkeypatch.setenv(MAX_ENTRIES_ENV, "1000")
    bridge = start_bridge()
    path, put_nar, put_narinfo = upload(bridge, wide_nar(1000), "wide-ok")
    assert (put_nar.status, put_narinfo.status) == (200, 200)
    assert bridge.get(f"/{path.hash_part}.ls").body.count(b'"type":"regular"') == 1000
    _, put_nar, _ = upload(bridge, wide_nar(1001), "wide-refused")
    assert put_nar.status == 400 and b"more than 1000 entries" in put_nar.body, put_nar.body

