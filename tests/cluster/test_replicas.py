"""Stateless replicas on one cluster (PostgreSQL + SeaweedFS, real `cairn` processes): what one
replica writes, another serves; writers at once share chunks instead of storing them twice."""

from __future__ import annotations

import os
import subprocess

import pytest

from castore.local.engine import CHUNKS
from castore.storage.location import Location
from store import api
from store.url import open_store
from tests.cluster.checks import assert_dumps_like_nix, overlapping_tree, walk_objects
from tests.store.nixtool import build_closure, interop, nix


@interop
@pytest.mark.slow
def test_nix_copy_to_one_bridge_and_from_another(cluster, tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg-cache"))  # Nix remembers narinfos there
    top, paths = build_closure(tmp_path, f'''
        dep = sh "cluster-dep" "echo dep-{os.getpid()} > $out";
        mid = sh "cluster-mid" "/bin/mkdir $out; echo ${{dep}} > $out/dep; /bin/ln -s ${{dep}} $out/link";''',
        'sh "cluster-top" "/bin/mkdir -p $out/bin; echo ${mid} > $out/bin/mid; echo $out > $out/self"')
    first, second = cluster.bridges
    nix("nix", "copy", "--to", f"{first}?compression=xz", top)
    dest = tmp_path / "dest"
    nix("nix", "copy", "--no-check-sigs", "--from", second, "--to", f"local?root={dest}", top)
    for path in paths:
        assert nix("nix", "hash", "path", f"{dest}{path}") == nix("nix", "hash", "path", path)


@interop
@pytest.mark.slow
def test_two_writers_at_once_store_every_shared_chunk_once(cluster, tmp_path):
    """Two `cairn import`s of overlapping trees (one tree both import) race on the shared
    chunks. Chunk records are insert-only, keyed by digest, so a chunk both wrote has one
    record, naming one writer's pack; the other writer's copy sits in a pack no record names
    for it: garbage for GC, never a second live copy. The live records hold exactly the chunks
    one writer alone stores for the same trees."""
    trees = {tag: overlapping_tree(tmp_path / tag, tag) for tag in ("a", "b", "c")}
    writers = [cluster.popen("import", "--store", cluster.store, *(str(trees[t]) for t in order),
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE)
               for order in (("a", "b"), ("c", "b"))]
    imported = {}
    for writer in writers:
        out, err = writer.communicate(timeout=300)
        assert writer.returncode == 0, err.decode()
        imported.update((path, trees[api.parse_store_path(path).name]) for path in out.decode().split())
    assert len(imported) == 3
    assert_dumps_like_nix(cluster, cluster.daemons[1], imported)

    with open_store(f"local://{tmp_path}/alone") as alone:
        for tree in trees.values():
            api.import_path(alone, tree)
    reference = Location.parse(f"local://{tmp_path}/alone").open_metadata()
    try:
        expected = sorted(key for key, _ in reference.items(CHUNKS))
    finally:
        reference.close()
    objects = walk_objects(cluster.store)
    assert objects.missing == []
    assert sorted(objects.chunks) == expected
