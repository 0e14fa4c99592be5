"""The write side over plain HTTP: every compression, the narinfo checks, durability, access control."""

from __future__ import annotations

import base64
import bz2
import hashlib
import lzma

import brotli
import pytest
import zstandard

from store import nixbase32
from store.narinfo import NarInfo
from store.signing import SecretKey, verify_narinfo
from store.storepath import StorePath
from nar_bridge.names import NarFile
from tests.nar_bridge.conftest import make_upload, other_path, small_tree, with_references

COMPRESSORS = {
    "none": lambda b: b,
    "xz": lzma.compress,
    "bzip2": bz2.compress,
    "zstd": lambda b: zstandard.ZstdCompressor().compress(b),
    "br": brotli.compress,
}
DECOMPRESSORS = {
    "none": lambda b: b,
    "xz": lzma.decompress,
    "bzip2": bz2.decompress,
    "zstd": lambda b: zstandard.ZstdDecompressor().decompressobj().decompress(b),
    "br": brotli.decompress,
}


def put_nar(bridge, upload, compression: str = "xz", headers=None):
    body = COMPRESSORS[compression](upload.nar)
    nar_file = NarFile(hashlib.sha256(body).digest(), compression)
    return nar_file, bridge.put(f"/{nar_file.url}", body, headers)


@pytest.fixture
def upload(tmp_path):
    return make_upload(small_tree(tmp_path / "tree", "write"))


@pytest.mark.parametrize("compression", sorted(COMPRESSORS))
def test_upload_in_every_compression_then_serve_the_nar(start_bridge, upload, compression):
    bridge = start_bridge()
    nar_file, reply = put_nar(bridge, upload, compression)
    assert reply.status == 200, reply.body
    assert bridge.request("HEAD", f"/{nar_file.url}").status == 200
    again = bridge.get(f"/{nar_file.url}")  # Nix keeps the narinfo it uploaded and fetches this URL later
    assert again.status == 200 and DECOMPRESSORS[compression](again.body) == upload.nar
    reply = bridge.put(upload.narinfo_path, upload.narinfo(nar_file).encode())
    assert reply.status == 200, reply.body
    served = bridge.get(upload.narinfo_path)
    assert served.status == 200 and served.headers["content-type"].startswith("text/x-nix-narinfo")
    url = next(line.split(": ", 1)[1] for line in served.body.decode().splitlines() if line.startswith("URL: "))
    assert url == f"nar/{nixbase32.encode(upload.info.nar_sha256)}.nar"
    assert bridge.get(f"/{url}").body == upload.nar


def test_uploaded_signatures_are_kept_and_the_bridge_adds_its_own(start_bridge, upload, tmp_path):
    theirs, ours = SecretKey.generate("uploader-1"), SecretKey.generate("bridge-1")
    (tmp_path / "bridge.sec").write_text(str(ours))
    bridge = start_bridge(None, "--sign-key", str(tmp_path / "bridge.sec"))
    nar_file, _ = put_nar(bridge, upload)
    signature = theirs.sign(upload.info.fingerprint())
    assert bridge.put(upload.narinfo_path, upload.narinfo(nar_file, signatures=(signature,)).encode()).status == 200
    served = NarInfo.parse(bridge.get(upload.narinfo_path).body)
    assert {s.key_name for s in served.signatures} == {"uploader-1", "bridge-1"}
    for key in (theirs, ours):
        assert verify_narinfo(served, [key.public_key()])


def test_a_restart_between_nar_and_narinfo_loses_nothing(start_bridge, upload):
    bridge = start_bridge()
    nar_file, reply = put_nar(bridge, upload, "xz")
    assert reply.status == 200
    bridge.restart()
    assert bridge.request("HEAD", f"/{nar_file.url}").status == 200
    assert bridge.put(upload.narinfo_path, upload.narinfo(nar_file).encode()).status == 200
    assert bridge.get(upload.narinfo_path).status == 200


@pytest.mark.parametrize("change, message", [
    (dict(nar_hash=bytes(32)), "NarHash"),
    (dict(nar_size=12345), "NarSize"),
    (dict(url="nar/" + "0" * 52 + ".nar.xz"), "was not uploaded"),
    (dict(url="https://elsewhere/x.nar"), "not a NAR file uploaded here"),
])
def test_a_narinfo_that_disagrees_with_its_nar_is_refused_and_leaves_nothing(start_bridge, upload, change, message):
    bridge = start_bridge()
    nar_file, _ = put_nar(bridge, upload)
    reply = bridge.put(upload.narinfo_path, upload.narinfo(nar_file, **change).encode())
    assert reply.status == 400 and message in reply.body.decode()
    assert bridge.get(upload.narinfo_path).status == 404


def test_unknown_references_are_refused_a_self_reference_is_fine(start_bridge, upload):
    bridge = start_bridge()
    nar_file, _ = put_nar(bridge, upload)
    missing = StorePath(bytes(range(20)), "not-here")
    dependent = with_references(upload, other_path(upload, 1), missing)
    reply = bridge.put(dependent.narinfo_path, dependent.narinfo(nar_file).encode())
    assert reply.status == 400 and "unknown references" in reply.body.decode() and missing.basename in reply.body.decode()
    assert bridge.get(dependent.narinfo_path).status == 404

    assert bridge.put(upload.narinfo_path, upload.narinfo(nar_file).encode()).status == 200
    path = other_path(upload, 2)
    selfref = with_references(upload, path, path, upload.info.store_path)
    assert bridge.put(selfref.narinfo_path, selfref.narinfo(nar_file).encode()).status == 200


def test_a_nar_that_does_not_match_its_name_or_is_malformed_is_refused(start_bridge, upload):
    bridge = start_bridge()
    body = lzma.compress(upload.nar)
    wrong = NarFile(hashlib.sha256(b"other").digest(), "xz")
    reply = bridge.put(f"/{wrong.url}", body)
    assert reply.status == 400 and "sha256" in reply.body.decode()
    assert bridge.request("HEAD", f"/{wrong.url}").status == 404
    for junk in (lzma.compress(b"not a nar"), body[:-20], b"not xz at all"):
        name = NarFile(hashlib.sha256(junk).digest(), "xz")
        reply = bridge.put(f"/{name.url}", junk)
        assert reply.status == 400, reply.body
        assert bridge.request("HEAD", f"/{name.url}").status == 404
    assert bridge.put("/nar/" + "1" * 52 + ".nar.lz4", b"x").status == 400
    assert "Traceback" not in bridge.log_text()


def test_bad_narinfo_bodies_are_client_errors(start_bridge, upload):
    bridge = start_bridge()
    assert bridge.put(upload.narinfo_path, b"StorePath: nonsense\n").status == 400
    assert bridge.put(upload.narinfo_path, b"\xff\xfe").status == 400
    assert bridge.put("/not-a-hash.narinfo", b"x").status == 400
    assert bridge.put(upload.narinfo_path, b"x" * ((2 << 20) + 1)).status == 413


def test_read_only_refuses_writes_and_serves_reads(start_bridge, upload):
    bridge = start_bridge(None, "--read-only")
    nar_file, reply = put_nar(bridge, upload)
    assert reply.status == 403
    assert bridge.put(upload.narinfo_path, upload.narinfo(nar_file).encode()).status == 403
    assert bridge.get("/nix-cache-info").status == 200


def test_a_token_guards_writes_basic_or_bearer(start_bridge, upload, tmp_path):
    (tmp_path / "token").write_text("s3cret\n")
    bridge = start_bridge(None, "--token-file", str(tmp_path / "token"))
    basic = {"Authorization": "Basic " + base64.b64encode(b"nix:s3cret").decode()}
    wrong = {"Authorization": "Basic " + base64.b64encode(b"nix:guess").decode()}
    for headers in (None, wrong, {"Authorization": "Bearer guess"}):
        _, reply = put_nar(bridge, upload, headers=headers)
        assert reply.status == 401 and "www-authenticate" in reply.headers
    nar_file, reply = put_nar(bridge, upload, headers=basic)
    assert reply.status == 200
    reply = bridge.put(upload.narinfo_path, upload.narinfo(nar_file).encode(), {"Authorization": "Bearer s3cret"})
    assert reply.status == 200
    assert bridge.get(upload.narinfo_path).status == 200  # reads need no token


def test_build_logs_are_kept_across_restarts(start_bridge):
    bridge = start_bridge()
    drv = "/log/" + nixbase32.encode(bytes(20)) + "-hello.drv"
    assert bridge.get(drv).status == 404
    assert bridge.put(drv, b"building hello\n").status == 200
    bridge.restart()
    reply = bridge.get(drv)
    assert reply.status == 200 and reply.body == b"building hello\n"
    assert bridge.put("/log/" + nixbase32.encode(bytes(20)) + "-hello", b"x").status == 400
    assert bridge.get("/log/junk").status == 404
