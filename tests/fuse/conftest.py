"""Fixtures of the mount tests: the zoo imported into a local store, served locally or by a daemon."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import pytest

from tests.conftest import make_zoo
from tests.fuse.mounts import Mount, cairn, daemon, mounted


@dataclass(frozen=True)
class Imported:
    """A local store holding `trees`, each under the store path basename `paths[tree]`."""

    url: str
    trees: list[Path]
    paths: dict[Path, str]


@pytest.fixture(scope="module")
def imported(tmp_path_factory: pytest.TempPathFactory) -> Imported:
    base = tmp_path_factory.mktemp("trees")
    zoo = make_zoo(base / "zoo")
    singles = base / "singles"
    singles.mkdir()
    (singles / "file").write_text("Hello World!")
    (singles / "exe").write_text("#!/bin/sh\n")
    os.chmod(singles / "exe", 0o755)
    os.symlink("/nix/store/somewhereelse", singles / "link")
    trees = [zoo, singles / "file", singles / "exe", singles / "link"]
    url = f"local://{tmp_path_factory.mktemp('store')}"
    printed = cairn("import", "--store", url, *map(str, trees)).stdout.decode().split()
    return Imported(url, trees, {tree: os.path.basename(p) for tree, p in zip(trees, printed)})


@pytest.fixture(scope="module", params=["local", "grpc"])
def store_url(request: pytest.FixtureRequest, imported: Imported,
              tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The imported store, opened directly or through `cairn daemon` on a unix socket."""
    if request.param == "local":
        yield imported.url
        return
    with daemon(imported.url, tmp_path_factory.mktemp("grpc") / "cairn.sock") as url:
        yield url


@pytest.fixture(scope="module")
def store_mount(store_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Mount]:
    mountpoint = tmp_path_factory.mktemp("mnt") / "store"
    with mounted(["mount", str(mountpoint), "--store", store_url, "--xattr"], mountpoint) as mount:
        yield mount
