"""A client's mistakes over real HTTP are 400s with a reason, never 500s: numbers Python's int()
refuses (more than 4300 digits, digits that are not ASCII) and non-ASCII where base64 is due."""

from __future__ import annotations

import hashlib
import urllib.parse

import pytest

from castore.api import node_to_text
from castore.nodes import rename
from store import nixbase32
from nar_bridge.names import NarFile
from tests.nar_bridge.conftest import make_upload, small_tree

HUGE = "9" * 5000  # past int()'s 4300-digit limit


@pytest.fixture
def bridge_and_upload(tmp_path, start_bridge):
    bridge = start_bridge()
    upload = make_upload(small_tree(tmp_path / "tree", "bad-input"))
    nar_file = NarFile(hashlib.sha256(upload.nar).digest(), "none")
    assert bridge.put(f"/{nar_file.url}", upload.nar).status == 200
    return bridge, upload, nar_file


def assert_400(reply, reason: str) -> None:
    assert reply.status == 400, (reply.status, reply.body[:300])
    assert reason.encode() in reply.body, reply.body[:300]


@pytest.mark.parametrize("header", [f"bytes={HUGE}-", f"bytes=0-{HUGE}", f"bytes=-{HUGE}"])
def test_a_range_past_u64_is_400(bridge_and_upload, header):
    bridge, upload, _ = bridge_and_upload
    reply = bridge.get(f"/nar/{nixbase32.encode(upload.info.nar_sha256)}.nar", Range=header)
    assert_400(reply, "Range position")


@pytest.mark.parametrize("narsize", [HUGE, "\u00b2", "\u0661\u0662"])  # superscript two; Arabic-Indic 12
def test_a_castore_narsize_that_is_not_ascii_digits_of_a_u64_is_400(bridge_and_upload, narsize):
    bridge, upload, _ = bridge_and_upload
    node = node_to_text(rename(upload.info.node, b""))
    reply = bridge.get(f"/nar/tvix-castore/{node}?narsize={urllib.parse.quote(narsize)}")
    assert_400(reply, "?narsize=")


def narinfo_with(upload, nar_file: NarFile, key: str, value: str) -> bytes:
    lines = upload.narinfo(nar_file).splitlines()
    lines = [line for line in lines if not line.startswith(f"{key}: ")] + [f"{key}: {value}"]
    return ("\n".join(lines) + "\n").encode()


@pytest.mark.parametrize("key,value,reason", [
    ("NarSize", HUGE, "NarSize"),
    ("FileSize", HUGE, "FileSize"),
    ("NarSize", "\u0661\u0662", "NarSize"),
    ("Sig", "cache.example.org-1:\u00e9" + "A" * 86, "Sig"),
    ("NarHash", "sha256-\u00e9" + "A" * 43, "NarHash"),
])
def test_a_narinfo_with_a_bad_field_is_400_naming_it(bridge_and_upload, key, value, reason):
    bridge, upload, nar_file = bridge_and_upload
    reply = bridge.put(upload.narinfo_path, narinfo_with(upload, nar_file, key, value))
    assert_400(reply, reason)
    assert bridge.get(upload.narinfo_path).status == 404
