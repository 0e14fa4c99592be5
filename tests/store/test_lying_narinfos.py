"""A narinfo whose FileHash, NarHash or NarSize lies is refused by every way in, and nothing is kept:
`cairn archive` (non-zero exit), nar-bridge uploads (400) and `nix+http` read-through (absent).
The lies are made in a real `nix copy --to file://` cache and signed again, so only the lie is wrong."""

from __future__ import annotations

import logging
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from castore.nodes import DirectoryNode
from store.storepath import StorePath
from store.url import open_store
from store.verified_ingest import ingest_verified
from tests.nar_bridge.conftest import start_bridge  # noqa: F401 (fixture)
from tests.nar_bridge.test_nix_interop import nginx  # noqa: F401 (fixture)
from tests.store.nixtool import interop
from tests.store.signedcache import LIES, SignedCache, lying, signed_cache

CAIRN = str(Path(sys.executable).parent / "cairn")


@pytest.fixture(scope="module")
def cache(tmp_path_factory) -> SignedCache:
    return signed_cache(tmp_path_factory.mktemp("lies"), "lies")


@pytest.fixture(scope="module")
def top_root(cache) -> DirectoryNode:
    """The top path's root directory, as an honest ingest of its NAR gives it."""
    with open_store("memory://") as scratch, (cache.dir / cache.narinfo(cache.top).url).open("rb") as raw:
        node = ingest_verified(scratch.castore, raw, cache.narinfo(cache.top)).node
    assert isinstance(node, DirectoryNode)
    return node


def lying_cache(cache: SignedCache, tmp_path: Path, path: str, field: str) -> Path:
    """A copy of the cache in which `path`'s narinfo lies about `field`."""
    copy = tmp_path / "cache"
    shutil.copytree(cache.dir, copy)
    cache.narinfo_file(path, copy).write_text(lying(cache.narinfo(path), field, cache.secret).render())
    return copy


def cairn(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([CAIRN, *args], capture_output=True, text=True)


@interop
@pytest.mark.parametrize("field", sorted(LIES))
def test_archive_refuses_a_lying_narinfo_and_keeps_nothing(cache, top_root, tmp_path, field):
    store = f"local://{tmp_path}/store"
    done = cairn("archive", f"file://{lying_cache(cache, tmp_path, cache.top, field)}", "--store", store)
    assert done.returncode != 0
    assert f"cairn: error: {cache.top}: {field} " in done.stderr, done.stderr
    assert sorted(done.stdout.split()) == sorted(p for p in cache.paths if p != cache.top)
    assert cairn("path-info", cache.top, "--store", store).returncode != 0
    with open_store(store) as opened:
        assert opened.castore.directories.get(top_root.digest) is None


@interop
@pytest.mark.parametrize("field", sorted(LIES))
def test_upload_refuses_a_lying_narinfo_with_400_and_keeps_nothing(cache, start_bridge, field):
    leaf = next(p for p in cache.paths if not cache.narinfo(p).references)  # an honest narinfo needs nothing else
    honest = cache.narinfo(leaf)
    narinfo_url = f"/{honest.store_path.hash_part}.narinfo"
    bridge = start_bridge()
    assert bridge.put(f"/{honest.url}", (cache.dir / honest.url).read_bytes()).status == 200
    reply = bridge.put(narinfo_url, lying(honest, field, cache.secret).render().encode())
    assert reply.status == 400 and reply.body.decode().startswith(field), reply.body
    assert bridge.get(narinfo_url).status == 404
    assert bridge.put(narinfo_url, honest.render().encode()).status == 200  # the lie alone was refused


@interop
@pytest.mark.parametrize("field", sorted(LIES))
def test_read_through_refuses_a_lying_narinfo_and_keeps_nothing(cache, top_root, nginx, tmp_path, caplog, field):
    url = nginx(lying_cache(cache, tmp_path, cache.top, field))
    with open_store("memory://", pathinfo_url=f"nix+{url}?trusted-public-keys={cache.public_key}") as store, \
            caplog.at_level(logging.WARNING, "store.pathinfo.nix_http"):
        assert store.pathinfo.get(StorePath.parse(cache.top).digest) is None
        assert store.castore.directories.get(top_root.digest) is None
    refusals = [r.getMessage() for r in caplog.records if r.name == "store.pathinfo.nix_http"]
    assert len(refusals) == 1 and f"refused: {field} " in refusals[0]
