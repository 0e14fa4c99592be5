"""`cairn mount`: store paths under the mount point, compared with C++ Nix and the original trees.

Every test runs twice: over the local store, and over `cairn daemon` on a grpc+unix socket.
"""

from __future__ import annotations

import errno
import json
import os
import stat
import subprocess
from pathlib import Path
from typing import Callable

import pytest

from castore.digest import B3Digest
from tests.fuse.conftest import Imported
from tests.fuse.mounts import Mount, cairn, fuse_test, mounted
from tests.store.nixtool import interop, nix

pytestmark = fuse_test


@interop
def test_nix_hashes_and_dumps_each_mounted_path_as_recorded(store_mount: Mount, imported: Imported) -> None:
    for basename in imported.paths.values():
        mounted_path = str(store_mount.path(basename))
        info = json.loads(cairn("path-info", "--json", basename, "--store", imported.url).stdout)[0]
        assert "sha256:" + nix("nix", "hash", "path", "--base32", mounted_path).decode().strip() == info["narHash"]
        assert nix("nix-store", "--dump", mounted_path) == cairn("dump", basename, "--store", imported.url).stdout


def test_a_mounted_tree_equals_the_original(store_mount: Mount, imported: Imported) -> None:
    zoo = imported.trees[0]
    mounted_zoo = store_mount.path(imported.paths[zoo])
    done = subprocess.run(["diff", "-r", "--no-dereference", str(zoo), str(mounted_zoo)], capture_output=True)
    assert done.returncode == 0, done.stdout.decode(errors="replace")
    for tree in imported.trees:
        _assert_same_kinds_modes_and_targets(tree, store_mount.path(imported.paths[tree]))


def _assert_same_kinds_modes_and_targets(original: Path, mounted_path: Path) -> None:
    """Symlink targets, sizes, and the modes of a Nix store: 0444, 0555 if executable, dirs 0555."""
    pairs = [(original, mounted_path)]
    for dirpath, dirnames, filenames in os.walk(original):
        for name in dirnames + filenames:
            relative = Path(dirpath, name).relative_to(original)
            pairs.append((original / relative, mounted_path / relative))
    for ours, theirs in pairs:
        want, got = os.lstat(ours), os.lstat(theirs)
        assert stat.S_IFMT(got.st_mode) == stat.S_IFMT(want.st_mode), theirs
        if stat.S_ISLNK(want.st_mode):
            assert os.readlink(theirs) == os.readlink(ours)
        elif stat.S_ISDIR(want.st_mode):
            assert stat.S_IMODE(got.st_mode) == 0o555
        else:
            assert stat.S_IMODE(got.st_mode) == (0o555 if want.st_mode & 0o100 else 0o444), theirs
            assert got.st_size == want.st_size


def test_the_root_is_listed_only_with_list_root(store_mount: Mount, store_url: str, imported: Imported,
                                                tmp_path: Path) -> None:
    assert os.listdir(store_mount.mountpoint) == []
    assert os.path.isdir(store_mount.path(imported.paths[imported.trees[0]]))  # lookups work all the same
    mountpoint = tmp_path / "listed"
    with mounted(["mount", str(mountpoint), "--store", store_url, "--list-root"], mountpoint):
        assert sorted(os.listdir(mountpoint)) == sorted(imported.paths.values())


def test_unknown_and_malformed_names_are_not_found(store_mount: Mount, imported: Imported) -> None:
    zoo = imported.paths[imported.trees[0]]
    hash_part = zoo.split("-", 1)[0]
    unknown = ["0" * 32 + "-zoo", f"{hash_part}-another-name"]
    malformed = ["not-a-store-path", "e" * 32 + "-zoo", hash_part, f"{hash_part}-", f"{hash_part}-n\xe4me", "..."]
    for name in unknown + malformed:
        with pytest.raises(FileNotFoundError):
            os.lstat(store_mount.path(name))
    with pytest.raises(FileNotFoundError):
        os.lstat(store_mount.path(zoo, "no-such-entry"))
    with pytest.raises(NotADirectoryError):
        os.lstat(store_mount.path(zoo, "one-byte", "below-a-file"))


def test_writes_are_refused_as_read_only(store_mount: Mount, imported: Imported) -> None:
    zoo = store_mount.path(imported.paths[imported.trees[0]])
    attempts: list[Callable[[], object]] = [
        lambda: open(zoo / "one-byte", "r+b"),
        lambda: open(zoo / "one-byte", "ab"),
        lambda: open(zoo / "new-file", "wb"),
        lambda: open(store_mount.path("new-root-file"), "wb"),
        lambda: os.mkdir(zoo / "new-dir"),
        lambda: os.unlink(zoo / "one-byte"),
        lambda: os.rmdir(zoo / "empty-dir"),
        lambda: os.rename(zoo / "one-byte", zoo / "two-bytes"),
        lambda: os.symlink("target", zoo / "new-link"),
        lambda: os.link(zoo / "one-byte", zoo / "hard-link"),
        lambda: os.chmod(zoo / "one-byte", 0o644),
        lambda: os.truncate(zoo / "one-byte", 0),
        lambda: os.utime(zoo / "one-byte"),
    ]
    for attempt in attempts:
        with pytest.raises(OSError) as raised:
            attempt()
        assert raised.value.errno == errno.EROFS, attempt
    assert (zoo / "one-byte").read_bytes() == b"x"


def test_xattrs_name_the_castore_digests(store_mount: Mount, imported: Imported) -> None:
    zoo_info = json.loads(cairn("path-info", "--json", imported.paths[imported.trees[0]],
                                "--store", imported.url).stdout)[0]
    zoo = store_mount.path(imported.paths[imported.trees[0]])
    directory_digest = zoo_info["root"].split()[1]
    assert os.getxattr(zoo, "user.tvix.castore.directory.digest").decode() == directory_digest
    assert os.listxattr(zoo) == ["user.tvix.castore.directory.digest"]
    blob = os.getxattr(zoo / "medium.bin", "user.tvix.castore.blob.digest").decode()
    assert blob == B3Digest.of((imported.trees[0] / "medium.bin").read_bytes()).b3()
    with pytest.raises(OSError) as raised:
        os.getxattr(zoo / "medium.bin", "user.other")
    assert raised.value.errno == errno.ENODATA


def test_without_xattr_there_are_none(store_url: str, imported: Imported, tmp_path: Path) -> None:
    mountpoint = tmp_path / "plain"
    with mounted(["mount", str(mountpoint), "--store", store_url], mountpoint) as mount:
        with pytest.raises(OSError) as raised:
            os.getxattr(mount.path(imported.paths[imported.trees[0]]), "user.tvix.castore.directory.digest")
        assert raised.value.errno in (errno.ENOTSUP, errno.ENODATA)
