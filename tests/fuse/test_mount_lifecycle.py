"""Mounting and unmounting: signals, a mount point left by a killed process, `cairn castore mount`."""

from __future__ import annotations

import errno
import os
import signal
import subprocess
from pathlib import Path

import pytest

from tests.fuse.conftest import Imported
from tests.fuse.mounts import cairn, fuse_test, mounted

pytestmark = fuse_test


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_a_signal_unmounts_cleanly(signum: int, imported: Imported, tmp_path: Path) -> None:
    mountpoint = tmp_path / "mnt"
    with mounted(["mount", str(mountpoint), "--store", imported.url], mountpoint) as mount:
        zoo = mount.path(imported.paths[imported.trees[0]])
        assert (zoo / "one-byte").read_bytes() == b"x"
        assert mount.signal(signum) == 0
        assert not os.path.ismount(mountpoint)
        assert os.listdir(mountpoint) == []
        assert "unmounted" in mount.log.read_text()


def test_a_mount_point_left_by_a_killed_process_is_reusable_after_fusermount(imported: Imported,
                                                                             tmp_path: Path) -> None:
    mountpoint = tmp_path / "mnt"
    args = ["mount", str(mountpoint), "--store", imported.url]
    with mounted(args, mountpoint) as mount:
        mount.signal(signal.SIGKILL)
        with pytest.raises(OSError) as raised:
            os.listdir(mountpoint)
        assert raised.value.errno == errno.ENOTCONN

        refused = cairn(*args, check=False)
        assert refused.returncode == 1
        assert f"run `fusermount3 -u {mountpoint}` first" in refused.stderr.decode()

        subprocess.run(["fusermount3", "-u", str(mountpoint)], check=True)
    with mounted(args, mountpoint) as mount:
        assert mount.path(imported.paths[imported.trees[0]], "one-byte").read_bytes() == b"x"


def test_castore_mount_shows_one_directory(imported: Imported, tmp_path: Path) -> None:
    zoo = imported.trees[0]
    root = cairn("castore", "import", "--store", imported.url, str(zoo)).stdout.decode().split()
    assert root[0] == "directory"
    mountpoint = tmp_path / "mnt"
    with mounted(["castore", "mount", root[1], str(mountpoint), "--store", imported.url], mountpoint):
        done = subprocess.run(["diff", "-r", "--no-dereference", str(zoo), str(mountpoint)], capture_output=True)
        assert done.returncode == 0, done.stdout.decode(errors="replace")
        assert sorted(os.listdir(mountpoint)) == sorted(os.listdir(zoo))


def test_castore_mount_refuses_a_blob(imported: Imported, tmp_path: Path) -> None:
    root = cairn("castore", "import", "--store", imported.url, str(imported.trees[1])).stdout.decode().split()
    assert root[0] == "file"
    refused = cairn("castore", "mount", root[1], str(tmp_path), "--store", imported.url, check=False)
    assert refused.returncode == 1 and "is not a directory" in refused.stderr.decode()


def test_a_missing_mount_point_is_one_line(imported: Imported, tmp_path: Path) -> None:
    refused = cairn("mount", str(tmp_path / "absent"), "--store", imported.url, check=False)
    assert refused.returncode == 1
    assert refused.stderr.decode().strip().endswith("absent: No such file or directory")


def test_allow_other_reaches_the_kernel(imported: Imported, tmp_path: Path) -> None:
    mountpoint = tmp_path / "mnt"
    with mounted(["mount", str(mountpoint), "--store", imported.url, "--allow-other"], mountpoint):
        options = next(line.split()[3] for line in Path("/proc/self/mounts").read_text().splitlines()
                       if line.split()[1] == str(mountpoint))
    assert "allow_other" in options.split(",") and "ro" in options.split(",")
