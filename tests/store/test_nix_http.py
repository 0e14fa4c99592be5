"""`nix+http(s)://` PathInfoService against real caches: `nix copy --to file://` caches (signed, and
unsigned content-addressed paths) served by nginx; the NARs it ingests render back to Nix's NarHash."""

from __future__ import annotations

import dataclasses
import hashlib
import logging
import os
import re
import shutil
import threading
import time
from pathlib import Path

import pytest

from castore.digest import B3Digest
from castore.errors import BackendError, ValidationError
from castore.blobs.memory import MemoryBlobService
from castore.directories.memory import MemoryDirectoryService
from castore.nodes import FileNode
from castore.url import CAStore
from store.nar.render import render_nar
from store.narinfo import NarInfo
from store.pathinfo.model import PathInfo
from store.pathinfo.nix_http import NixHttpCache, NixHttpPathInfoService
from store.signing import PublicKey, SecretKey
from store.storepath import StorePath
from store.url import open_store
from tests.nar_bridge.conftest import free_port
from tests.nar_bridge.test_nix_interop import nginx  # noqa: F401 (fixture)
from tests.store.nixtool import interop, nix
from tests.store.signedcache import SignedCache, signed_cache

EXTRA_LINES = "System: x86_64-linux\nX-Read-Through: kept\n"  # signatures cover neither
OTHER_KEY = str(SecretKey.generate("other-1").public_key())


@pytest.fixture(scope="module")
def cache(tmp_path_factory) -> SignedCache:
    cache = signed_cache(tmp_path_factory.mktemp("nix-http"), "nixhttp")
    for path in cache.paths:
        file = cache.narinfo_file(path)
        file.write_text(file.read_text() + EXTRA_LINES)
    return cache


def service(url: str, key: str):
    """A store whose path infos read through `url` (http://...) into a memory castore."""
    return open_store("memory://", pathinfo_url=f"nix+{url}?trusted-public-keys={key}")


def digest(store_path: str) -> bytes:
    return StorePath.parse(store_path).digest


def test_urls_are_parsed_and_validated():
    key = SecretKey.generate("a+b.example-1").public_key()
    parsed = NixHttpCache.parse(f"nix+https://cache.example/sub/?trusted-public-keys={key}%20{OTHER_KEY}")
    assert parsed.base == "https://cache.example/sub"
    assert parsed.keys == (key, PublicKey.parse(OTHER_KEY))
    plus = PublicKey("k-1", bytes([0xfb]) * 32)  # base64 of 0xfb bytes is full of '+'
    assert "+" in str(plus) and NixHttpCache.parse(f"nix+http://h?trusted-public-keys={plus}").keys == (plus,)
    for bad, message in [("nix+http://h", "needs trusted-public-keys"),
                         (f"nix+http://h?trusted-public-keys={key}&priority=1", "unknown parameter 'priority'"),
                         (f"nix+ftp://h?trusted-public-keys={key}", re.escape("is not nix+http(s)")),
                         (f"nix+http:///path?trusted-public-keys={key}", re.escape("is not nix+http(s)")),
                         ("nix+http://h?trusted-public-keys=nocolon", "public key")]:
        with pytest.raises(ValidationError, match=message):
            NixHttpCache.parse(bad)


def test_it_is_read_only_and_unlisted():
    with service("http://127.0.0.1:9/cache", OTHER_KEY) as store:
        info = PathInfo(StorePath(bytes(20), "x"), FileNode(b"", B3Digest.of(b"x"), 1), 8, bytes(32))
        with pytest.raises(ValidationError, match="read-only"):
            store.pathinfo.put(info)
        assert list(store.pathinfo.list()) == []
        assert store.pathinfo.get_by_nar_sha256(bytes(32)) is None
        with pytest.raises(ValidationError):
            store.pathinfo.get(b"short")


def test_an_upstream_nobody_answers_is_a_backend_error():
    with service(f"http://127.0.0.1:{free_port()}/cache", OTHER_KEY) as store, pytest.raises(BackendError):
        store.pathinfo.get(bytes(20))


@interop
def test_a_closure_reads_through_every_field_kept_and_nars_hash_to_their_narhash(cache, nginx):
    with service(nginx(cache.dir), cache.public_key) as store:
        for path in cache.paths:
            narinfo = cache.narinfo(path)
            info = store.pathinfo.get(digest(path))
            assert info is not None and info.store_path.absolute == path
            nar = hashlib.sha256()
            for piece in render_nar(store.castore, info.node):
                nar.update(piece)
            assert nar.digest() == info.nar_sha256 == narinfo.nar_hash
            assert nix("nix", "hash", "path", "--type", "sha256", "--base32", path).decode().strip() == \
                info.nar_hash.nix32().split(":")[1]
            assert (info.references, info.signatures, info.deriver, info.ca) == \
                (narinfo.references, narinfo.signatures, narinfo.deriver, narinfo.ca)
            assert info.signatures and info.extras.system == "x86_64-linux"
            assert [u.key for u in info.extras.unknown] == ["X-Read-Through"]
            assert store.pathinfo.calculate_nar(info.node) == (info.nar_size, info.nar_sha256)
        assert store.pathinfo.get(bytes(20)) is None  # the cache answers 404


@interop
def test_an_untrusted_key_reads_as_absent_with_one_log_line_and_nothing_fetched(cache, nginx, caplog):
    url = nginx(cache.dir)
    with service(url, OTHER_KEY) as store, caplog.at_level(logging.WARNING, "store.pathinfo.nix_http"):
        assert store.pathinfo.get(digest(cache.top)) is None
        assert store.castore.blobs.usage().standalone_chunks == 0  # nothing ingested
    refusals = [r for r in caplog.records if r.name == "store.pathinfo.nix_http"]
    assert len(refusals) == 1 and "no valid signature" in refusals[0].getMessage()
    assert "GET /nar/" not in nginx.access.read_text()  # refused before its NAR was fetched


class GatedBlobs(MemoryBlobService):
    """Blob writes wait for the gate: a fetch stays under way until the test opens it."""

    def __init__(self, gate: threading.Event) -> None:
        super().__init__()
        self._gate = gate

    def open_write(self):
        self._gate.wait(30)
        return super().open_write()


@interop
def test_concurrent_gets_fetch_once(cache, nginx):
    gate = threading.Event()
    castore = CAStore(GatedBlobs(gate), MemoryDirectoryService())
    pathinfo = NixHttpPathInfoService(f"nix+{nginx(cache.dir)}?trusted-public-keys={cache.public_key}", castore)
    results: list[PathInfo | None] = []
    threads = [threading.Thread(target=lambda: results.append(pathinfo.get(digest(cache.top)))) for _ in range(8)]
    for t in threads:
        t.start()
    time.sleep(0.5)  # every thread has asked while the first fetch waits at the gate
    gate.set()
    for t in threads:
        t.join()
    assert len(results) == 8 and all(r is not None and r == results[0] for r in results)
    hash_part = Path(cache.top).name[:32]
    log = nginx.access.read_text()
    assert log.count(f"GET /{hash_part}.narinfo") == 1
    assert log.count("GET /nar/") == 1


@pytest.fixture(scope="module")
def ca_cache(tmp_path_factory) -> tuple[Path, dict[str, str]]:
    """An unsigned cache of content-addressed paths: a NAR-hashed directory, a flat file, a text file."""
    work = tmp_path_factory.mktemp("ca-cache")
    tree = work / f"ca-tree-{os.getpid()}"
    (tree / "sub").mkdir(parents=True)
    (tree / "sub" / "file").write_text(f"ca {os.getpid()}\n")
    flat = work / f"ca-flat-{os.getpid()}"
    flat.write_text(f"flat {os.getpid()}\n")
    paths = {
        "fixed:r:sha256": nix("nix-store", "--add", str(tree)).decode().strip(),
        "fixed:sha256": nix("nix-store", "--add-fixed", "sha256", str(flat)).decode().strip(),
        "text:sha256": nix("nix-instantiate", "--eval", "--read-write-mode", "-E",
                           f'builtins.toFile "ca-text-{os.getpid()}" "text {os.getpid()}"').decode().strip('"\n'),
    }
    nix("nix", "copy", "--to", f"file://{work / 'cache'}", *paths.values())
    return work / "cache", paths


@interop
@pytest.mark.parametrize("kind", ["fixed:r:sha256", "fixed:sha256", "text:sha256"])
def test_a_content_addressed_path_needs_no_signature(ca_cache, nginx, kind):
    root, paths = ca_cache
    narinfo = NarInfo.parse((root / f"{Path(paths[kind]).name[:32]}.narinfo").read_bytes())
    assert not narinfo.signatures and narinfo.ca.render().startswith(kind.rsplit(":", 1)[0] + ":")
    with service(nginx(root), OTHER_KEY) as store:
        info = store.pathinfo.get(digest(paths[kind]))
    assert info is not None and info.ca == narinfo.ca and info.nar_sha256 == narinfo.nar_hash


@interop
def test_a_content_address_that_does_not_give_its_path_is_refused(ca_cache, nginx, tmp_path, caplog):
    root, paths = ca_cache
    spoiled = tmp_path / "cache"
    shutil.copytree(root, spoiled)
    path = paths["fixed:r:sha256"]
    file = spoiled / f"{Path(path).name[:32]}.narinfo"
    narinfo = NarInfo.parse(file.read_bytes())
    other = narinfo.ca._replace(hash=narinfo.ca.hash._replace(digest=bytes(32)))
    file.write_text(dataclasses.replace(narinfo, ca=other).render())
    with service(nginx(spoiled), OTHER_KEY) as store, caplog.at_level(logging.WARNING, "store.pathinfo.nix_http"):
        assert store.pathinfo.get(digest(path)) is None
    assert "CA does not give its store path" in caplog.text
