"""The NAR-hash index names every path with a NAR: paths of equal contents share one, and
deleting any of them (`cairn delete`, GC) leaves the NAR served through the others."""

from __future__ import annotations

from pathlib import Path

import pytest

from store import api, nixbase32
from store.gc.collect import collect, delete_path
from store.gc.engine import engine_of
from store.gc.roots import add_root
from store.pathinfo.local import INDEXED, NARHASH
from store.pathinfo.model import PathInfo
from store.url import Store, open_store
from tests.nar_bridge.conftest import start_bridge  # noqa: F401 (fixture)


@pytest.fixture(params=["lmdb", "postgres"])
def url(request, tmp_path: Path) -> str:
    if request.param == "lmdb":
        return f"local://{tmp_path}/s"
    return f"{request.getfixturevalue('postgres_url')}&packs=file://{tmp_path}/packs"


def twins(store: Store, tmp_path: Path) -> tuple[PathInfo, PathInfo]:
    """Two store paths of the same contents (so the same NAR) under different names."""
    infos = []
    for name in ("first", "second"):
        (tmp_path / name).mkdir()
        (tmp_path / name / "data").write_text("the same contents\n")
        infos.append(api.import_path(store, tmp_path / name))
    first, second = infos
    assert first.nar_sha256 == second.nar_sha256 and first.store_path != second.store_path
    return first, second


def test_deleting_the_last_put_twin_leaves_the_nar_served(url: str, tmp_path: Path, start_bridge) -> None:
    with open_store(url) as store:
        first, second = twins(store, tmp_path)
        nar = b"".join(api.dump(store, first.store_path))
        delete_path(store, second.store_path)
        assert store.pathinfo.get_by_nar_sha256(first.nar_sha256) == first

    reply = start_bridge(url).get(f"/nar/{nixbase32.encode(first.nar_sha256)}.nar")

    assert (reply.status, reply.body) == (200, nar)


def test_gc_of_one_twin_leaves_the_other_found(url: str, tmp_path: Path) -> None:
    with open_store(url) as store:
        first, second = twins(store, tmp_path)
        add_root(engine_of(store), "keep", [first.store_path])

        assert collect(store, grace=0).paths == 1

        assert store.pathinfo.get(second.store_path.digest) is None
        assert store.pathinfo.get_by_nar_sha256(first.nar_sha256) == first
        delete_path(store, first.store_path, force=True)
        assert store.pathinfo.get_by_nar_sha256(first.nar_sha256) is None


def test_a_store_with_the_old_one_path_index_is_upgraded_on_open(tmp_path: Path) -> None:
    url = f"local://{tmp_path}/s"
    with open_store(url) as store:
        first, second = twins(store, tmp_path)
        metadata = engine_of(store).metadata
        metadata.commit({NARHASH: {first.nar_sha256: second.store_path.digest}},  # the last put
                        {NARHASH: [k for k, _ in metadata.items(NARHASH)], INDEXED: [b"every-path"]})
    with open_store(url) as store:
        assert store.pathinfo.get_by_nar_sha256(first.nar_sha256) in (first, second)
        assert [len(k) for k, _ in engine_of(store).metadata.items(NARHASH)] == [52, 52]

        delete_path(store, second.store_path)

        assert store.pathinfo.get_by_nar_sha256(first.nar_sha256) == first
