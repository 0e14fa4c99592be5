"""A /nix/store mount whose path infos read through a Nix binary cache served by nginx (as snix does
for cache.nixos.org): checked against C++ Nix's `nix hash path` of the original paths."""

from __future__ import annotations

import errno
import json
import os
from pathlib import Path

import pytest

from store.storepath import StorePath
from tests.fuse.mounts import cairn, fuse_test, mounted
from tests.nar_bridge.test_nix_interop import closure, keypair, nginx  # noqa: F401 (fixtures)
from tests.store.nixtool import interop, new_key, nix

pytestmark = fuse_test


@pytest.fixture
def signed_cache(closure, keypair, tmp_path) -> Path:  # noqa: F811 (fixtures)
    """The closure in a signed `nix copy --to file://` cache."""
    secret, _ = keypair
    cache = tmp_path / "cache"
    nix("nix", "copy", "--to", f"file://{cache}?secret-key={secret}", closure.top)
    return cache


def mount_args(store: str, upstream: str, public_key: str, mountpoint: Path) -> list[str]:
    return ["mount", str(mountpoint), "--store", store,
            "--pathinfo-store", f"nix+{upstream}?trusted-public-keys={public_key}"]


@interop
def test_a_mount_reads_path_infos_through_a_signed_cache(closure, keypair, nginx, signed_cache,  # noqa: F811
                                                           tmp_path):
    _, public = keypair
    store = f"local://{tmp_path}/store"
    with mounted(mount_args(store, nginx(signed_cache), public, tmp_path / "mnt"), tmp_path / "mnt") as mount:
        for path in closure.paths:
            basename = StorePath.parse(path).basename
            assert nix("nix", "hash", "path", str(mount.path(basename))) == nix("nix", "hash", "path", path)


@interop
def test_a_cache_signed_by_an_untrusted_key_gives_enoent_one_log_line_and_stores_nothing(
        closure, nginx, signed_cache, tmp_path):  # noqa: F811
    _, other_public = new_key(tmp_path, "someone-else")
    store = f"local://{tmp_path}/store"
    top = StorePath.parse(closure.top)
    with mounted(mount_args(store, nginx(signed_cache), other_public, tmp_path / "mnt"), tmp_path / "mnt") as mount:
        with pytest.raises(OSError) as refused:
            os.stat(mount.path(top.basename))
        assert refused.value.errno in (errno.ENOENT, errno.EIO)
    logged = [line for line in mount.log.read_text().splitlines() if top.hash_part in line]
    assert len(logged) == 1, logged
    stats = json.loads(cairn("stats", "--json", "--store", store).stdout)
    assert (stats["paths"], stats.get("chunks", 0)) == (0, 0)
