"""nar-bridge's /metrics, access log and --log-format, after real traffic: `nix copy` to the bridge
and back, and reads through an upstream cache. Every scrape is parsed with prometheus_client.parser."""

from __future__ import annotations

import json
from pathlib import Path

from store import api, nixbase32
from tests.conftest import make_zoo
from tests.nar_bridge.conftest import Bridge
from tests.nar_bridge.test_nix_interop import closure, keypair, nginx, upstream_cache  # noqa: F401 - fixtures
from tests.scrape import Scrape
from tests.store.nixtool import interop, nix

NARINFO = "/{hash}.narinfo"
NAR = "/nar/{name}"


def scrape(bridge: Bridge) -> Scrape:
    reply = bridge.get("/metrics")
    assert reply.status == 200, reply.body
    assert reply.headers["content-type"].startswith("text/plain")
    return Scrape(reply.body.decode())


@interop
def test_nix_copy_to_and_from_the_bridge_moves_the_request_and_byte_counters(closure, start_bridge,  # noqa: F811
                                                                            nix_cache, tmp_path):
    bridge = start_bridge()
    nar_bytes = sum(i["narSize"] for i in json.loads(nix("nix", "path-info", "--json", "--recursive", closure.top)))

    nix("nix", "copy", "--to", f"{bridge.url}?compression=none", closure.top)
    uploaded = scrape(bridge)
    assert uploaded.value("cairn_http_requests_total", route=NAR, method="PUT", status="200") == 3
    assert uploaded.value("cairn_http_requests_total", route=NARINFO, method="PUT", status="200") == 3
    assert uploaded.value("cairn_http_received_bytes_total", route=NAR) == nar_bytes  # uncompressed NARs
    assert uploaded.value("cairn_http_received_bytes_total", route=NARINFO) > 0
    assert uploaded.value("cairn_store_paths") == 3
    assert uploaded.value("cairn_store_nar_bytes") == nar_bytes
    assert uploaded.value("cairn_store_stored_bytes") > 0 and uploaded.value("cairn_store_chunks") > 0

    nix_cache()
    nix("nix", "copy", "--no-check-sigs", "--from", bridge.url, "--to", f"local?root={tmp_path / 'dest'}",
        closure.top)
    served = scrape(bridge)
    assert served.value("cairn_http_requests_total", route=NARINFO, method="GET", status="200") >= 3
    assert served.value("cairn_http_requests_total", route=NAR, method="GET", status="200") == 3
    assert served.value("cairn_http_sent_bytes_total", route=NAR) > 0
    assert served.value("cairn_http_sent_bytes_total", route=NARINFO) > \
        uploaded.value("cairn_http_sent_bytes_total", route=NARINFO)
    assert served.value("cairn_nar_render_seconds_count") == 3
    assert served.value("cairn_cache_lookups_total", cache="closure") >= 3

    hash_parts = {Path(p).name[:32] for p in closure.paths}
    assert not any(h in v for h in hash_parts for v in served.label_values()), "a store path in a label"
    bridge.stop()
    log = bridge.log_text()
    assert " 200 " in next(line for line in log.splitlines() if "cairn.access: PUT /nar/" in line)
    assert any(f"cairn.access: GET /{h}.narinfo 200 " in log for h in hash_parts)


@interop
def test_reads_through_an_upstream_are_counted(closure, start_bridge, nginx, upstream_cache, keypair):  # noqa: F811
    _, public = keypair
    bridge = start_bridge("memory://", "--upstream", f"nix+{nginx(upstream_cache)}?trusted-public-keys={public}")
    top = Path(closure.top).name[:32]
    assert bridge.get(f"/{top}.narinfo").status == 200
    assert bridge.get(f"/{top}.narinfo").status == 200  # the bridge's recent narinfos
    assert bridge.get(f"/{'0' * 32}.narinfo").status == 404
    counted = scrape(bridge)
    assert counted.value("cairn_upstream_fetches_total", result="found") == 1
    assert counted.value("cairn_upstream_fetches_total", result="missing") == 1
    assert counted.value("cairn_upstream_fetches_total", result="failed") == 0
    assert counted.value("cairn_cache_lookups_total", cache="narinfo", result="hit") == 1
    assert counted.value("cairn_cache_lookups_total", cache="narinfo", result="miss") == 2
    assert counted.value("cairn_cache_lookups_total", cache="pathinfo-0", result="miss") == 2


def test_json_log_lines_carry_each_requests_fields(start_bridge):
    bridge = start_bridge("memory://", "--log-format", "json")
    assert bridge.get(f"/{'0' * 32}.narinfo").status == 404
    bridge.stop()
    records = [json.loads(line) for line in bridge.log_text().splitlines()]
    access = next(r for r in records if r["logger"] == "cairn.access" and r["status"] == 404)
    assert access["method"] == "GET" and access["path"] == f"/{'0' * 32}.narinfo"
    assert access["bytes"] > 0 and access["durationMs"] >= 0
    assert all({"time", "level", "message"} <= r.keys() for r in records)


def test_no_metrics_leaves_out_the_route_but_not_the_access_log(start_bridge):
    bridge = start_bridge("memory://", "--no-metrics")
    assert bridge.get("/metrics").status == 404
    bridge.stop()  # the line is written once the response is sent: after the client has it
    assert "cairn.access: GET /metrics 404 " in bridge.log_text()


def test_unknown_methods_and_malformed_requests_are_counted_under_bounded_labels(start_bridge):
    bridge = start_bridge("memory://")
    assert bridge.request("DELETE", f"/{'0' * 32}.narinfo").status == 405
    assert bridge.request("BREW", "/coffee").status in (400, 405)
    counted = scrape(bridge)
    assert counted.value("cairn_http_requests_total", route="unmatched", method="other", status="405") == 1
    assert counted.value("cairn_http_requests_total", method="other") == 2
    assert "BREW" not in counted.label_values() and "DELETE" not in counted.label_values()


def test_nars_sent_from_the_nar_cache_by_sendfile_count_their_bytes_and_cache_hits(tmp_path, start_bridge):
    store_dir = tmp_path / "store"
    with api.open_store(f"local://{store_dir}") as store:
        info = api.import_path(store, make_zoo(tmp_path / "zoo", big=(3 << 20) + 5))
    bridge = start_bridge(f"local://{store_dir}", "--nar-cache", str(tmp_path / "nar-cache"))
    path = f"/nar/{nixbase32.encode(info.nar_sha256)}.nar"
    for _ in range(2):  # rendered into the cache, then a hit
        reply = bridge.get(path, Accept_Encoding="identity")
        assert reply.status == 200 and len(reply.body) == info.nar_size
    counted = scrape(bridge)
    assert counted.value("cairn_http_sent_bytes_total", route=NAR) >= 2 * info.nar_size
    assert counted.value("cairn_cache_lookups_total", cache="nar-cache", result="miss") == 1
    assert counted.value("cairn_cache_lookups_total", cache="nar-cache", result="hit") == 1
    assert counted.value("cairn_cache_lookups_total", cache="nar-name", result="hit") == 1
    assert counted.value("cairn_nar_render_seconds_count") == 2
