"""Realisations of content-addressed derivations: `realisations/<id>.doi` with the real Nix (2.8 writes
them), `build-trace-v2/<drv>/<out>.doi` with the requests Nix >= 2.35 sends (recorded from its source:
binary-cache-store.cc upserts `json(UnkeyedRealisation).dump()`), their checks and who may write them."""

from __future__ import annotations

import base64
import json
import os
import subprocess
from pathlib import Path

import pytest

from store import nixbase32
from tests.nar_bridge.conftest import CAIRN, make_upload, small_tree
from tests.nar_bridge.test_write import put_nar
from tests.nar_bridge.test_nix_interop import fails
from tests.store.nixtool import interop, new_key, nix

CA = ["--extra-experimental-features", "ca-derivations", "--option", "substituters", ""]
DRV = nixbase32.encode(bytes(range(20))) + "-hello.drv"
SIG = "cache-1:" + base64.b64encode(bytes(64)).decode()


@pytest.fixture
def ca_expr(tmp_path) -> Path:
    """Two content-addressed derivations, top depending on dep, built with /bin/sh."""
    expr = tmp_path / "ca.nix"
    ca = 'system = builtins.currentSystem; builder = "/bin/sh"; __contentAddressed = true; ' \
         'outputHashMode = "recursive"; outputHashAlgo = "sha256";'
    expr.write_text(f'''let dep = derivation {{ {ca} name = "ca-dep"; args = ["-c" "echo dep-{os.getpid()} > $out"]; }};
        in derivation {{ {ca} name = "ca-top"; args = ["-c" "echo top ${{dep}} > $out"]; }}''')
    nix("nix", *CA, "build", "--option", "sandbox", "false", "--no-link", "-f", str(expr))
    return expr


def realisations(store: str, expr: Path) -> list[dict]:
    return json.loads(nix("nix", *CA, "realisation", "info", "--json", "--store", store, "-f", str(expr)))


def unsigned(found: list[dict]) -> list[dict]:
    return [{**r, "signatures": []} for r in found]


@interop
def test_nix_copies_a_ca_output_with_its_realisations_to_the_bridge_and_back(ca_expr, start_bridge, nix_cache,
                                                                             tmp_path):
    secret, public = new_key(tmp_path, "realisations-test")
    bridge = start_bridge(None, "--sign-key", str(secret))
    nix("nix", *CA, "copy", "--to", bridge.url, "-f", str(ca_expr))
    built = realisations("auto", ca_expr)
    assert unsigned(realisations(bridge.url, ca_expr)) == unsigned(built)
    dependency = next(iter(built[0]["dependentRealisations"]))
    assert bridge.get(f"/realisations/{dependency}.doi").status == 200
    nix_cache()
    # Signature checks on: Nix registers the realisations because the bridge signed them.
    copied = f"local?root={tmp_path / 'copied'}"
    nix("nix", *CA, "copy", "--option", "trusted-public-keys", public, "--from", bridge.url, "--to", copied,
        "-f", str(ca_expr))
    assert unsigned(realisations(copied, ca_expr)) == unsigned(built)
    nix_cache()
    # A fresh store that may not build anything gets the output by its realisation, from the bridge.
    substituted = f"local?root={tmp_path / 'substituted'}"
    nix("nix", *CA, "build", "--store", substituted, "--max-jobs", "0", "--option", "substituters", bridge.url,
        "--no-link", "-f", str(ca_expr))
    assert unsigned(realisations(substituted, ca_expr)) == unsigned(built)
    assert "Traceback" not in bridge.log_text()


@interop
def test_unsigned_realisations_are_refused_by_a_nix_that_checks_signatures(ca_expr, start_bridge, nix_cache,
                                                                          tmp_path):
    bridge = start_bridge()
    nix("nix", *CA, "copy", "--to", bridge.url, "-f", str(ca_expr))
    nix_cache()
    err = fails(*CA, "copy", "--from", bridge.url, "--to", f"local?root={tmp_path / 'copied'}", "-f", str(ca_expr))
    assert "lacks a valid signature" in err


@pytest.fixture
def output(start_bridge, tmp_path):
    """A bridge holding one uploaded path; the path's basename."""
    bridge = start_bridge()
    upload = make_upload(small_tree(tmp_path / "tree", "realised"))
    nar_file, reply = put_nar(bridge, upload)
    assert reply.status == 200
    assert bridge.put(upload.narinfo_path, upload.narinfo(nar_file).encode()).status == 200
    return bridge, upload.info.store_path.basename


def test_build_trace_v2_as_nix_2_35_writes_and_reads_it(output):
    bridge, out_path = output
    url = f"/build-trace-v2/{DRV}/out.doi"
    assert bridge.get(url).status == 404
    for body in (json.dumps({"outPath": out_path, "signatures": []}, separators=(",", ":")),
                 json.dumps({"outPath": out_path, "signatures": [{"keyName": "cache-1", "sig": SIG[8:]}, SIG]})):
        assert bridge.put(url, body.encode(), {"Content-Type": "application/json"}).status == 200
        reply = bridge.get(url)
        assert reply.status == 200 and reply.body == body.encode()
        assert reply.headers["content-type"].startswith("application/json")
    assert bridge.get(f"/build-trace-v2/{DRV}/dev.doi").status == 404
    bridge.restart()
    assert bridge.get(url).status == 200
    # Its output deleted, the realisation is as good as gone: it would send Nix to a missing path.
    subprocess.run([CAIRN, "delete", "--force", "--store", bridge.store, out_path], check=True, capture_output=True)
    assert bridge.get(url).status == 404


def test_realisations_are_checked_before_they_are_kept(output):
    bridge, out_path = output
    drv_hash = "sha256:" + "ab" * 32
    url = f"/realisations/{drv_hash}!out.doi"
    good = {"id": f"{drv_hash}!out", "outPath": out_path, "signatures": [], "dependentRealisations": {}}
    missing = nixbase32.encode(bytes(20)) + "-missing"
    bad = [
        (b"{not json", "not JSON"),
        (b"[]", "not a JSON object"),
        (json.dumps({**good, "id": f"{drv_hash}!dev"}), "id"),
        (json.dumps({**good, "extra": 1}), "unknown realisation field"),
        (json.dumps({**good, "outPath": "junk"}), "invalid store path"),
        (json.dumps({**good, "outPath": missing}), "not in this cache"),
        (json.dumps({**good, "signatures": ["cache-1:AAAA"]}), "64 bytes"),
        (json.dumps({**good, "dependentRealisations": {"sha256:xyz!out": out_path}}), "derivation output id"),
    ]
    for body, reason in bad:
        reply = bridge.put(url, body if isinstance(body, bytes) else body.encode())
        assert reply.status == 400 and reason in reply.body.decode(), (body, reply)
    assert bridge.get(url).status == 404
    assert bridge.put(url, b"{" + b" " * (1 << 20) + b"}").status == 413
    for junk in (f"/realisations/{drv_hash}!out", "/realisations/md5:00!out.doi", f"/realisations/{drv_hash}!o%20t.doi",
                 f"/build-trace-v2/{nixbase32.encode(bytes(20))}-hello/out.doi"):
        assert bridge.put(junk, json.dumps(good).encode()).status == 400, junk
        assert bridge.get(junk).status == 404, junk
    assert bridge.put(url, json.dumps(good).encode()).status == 200
    assert json.loads(bridge.get(url).body) == good


def test_writes_need_the_token_and_nix_cache_info_reads_with_it(start_bridge, tmp_path):
    (tmp_path / "token").write_text("s3cret\n")
    bridge = start_bridge(None, "--token-file", str(tmp_path / "token"))
    body = json.dumps({"outPath": nixbase32.encode(bytes(20)) + "-x", "signatures": []}).encode()
    for url in (f"/build-trace-v2/{DRV}/out.doi", f"/realisations/sha256:{'ab' * 32}!out.doi"):
        assert bridge.put(url, body).status == 401
        assert bridge.put(url, body, {"Authorization": "Bearer s3cret"}).status == 400  # let in; no such output
    # What Nix sends for a cache behind a netrc entry: the upload credentials, on reads too (attic#140).
    for authorization in ("Basic " + base64.b64encode(b"nix:s3cret").decode(), "Bearer s3cret", None):
        reply = bridge.request("GET", "/nix-cache-info", headers={"Authorization": authorization} if authorization else {})
        assert reply.status == 200 and b"StoreDir: /nix/store" in reply.body
