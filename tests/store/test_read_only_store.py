"""A store on a read-only file system (a tmpfs remounted read-only): everything that only
reads works (path-info, dump, list, stats, verify, the mount); a write is one line and exit 1."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from tests.conftest import make_zoo
from tests.fuse.mounts import HAVE_FUSE, mounted
from tests.small_fs import needs_root, remount, tmpfs
from tests.store.test_stats_verify import CAIRN, cairn

pytestmark = needs_root


@pytest.fixture
def read_only(tmp_path: Path):
    """A store holding the zoo on a tmpfs remounted read-only; yields (store URL, store path, NAR)."""
    with tmpfs(tmp_path / "fs", 64 << 20) as fs:
        store = f"local://{fs}/store"
        path = cairn("import", str(make_zoo(tmp_path / "zoo", big=3 << 20)), store=store)[1].strip()
        nar = subprocess.run([CAIRN, "dump", path, "--store", store], capture_output=True, check=True).stdout
        remount(fs, "ro")
        yield store, path, nar


def test_reads_work_on_a_read_only_file_system(read_only) -> None:
    store, path, nar = read_only
    assert cairn("path-info", path, store=store)[1].startswith(path)
    dumped = subprocess.run([CAIRN, "dump", path, "--store", store], capture_output=True)
    assert (dumped.returncode, dumped.stderr, dumped.stdout) == (0, b"", nar)
    assert path in cairn("list", store=store)[1]
    assert "stored bytes" in cairn("stats", store=store)[1]
    _, out, err = cairn("verify", "--all", store=store)
    assert ": 0 problems" in out + err


def test_a_path_never_dumped_dumps_on_a_read_only_file_system(tmp_path: Path) -> None:
    """Its NAR skeleton cannot be kept (store/nar/skeleton.py): it is laid out, as each time after."""
    with tmpfs(tmp_path / "fs", 64 << 20) as fs:
        store = f"local://{fs}/store"
        tree = make_zoo(tmp_path / "zoo", big=1 << 20)
        path = cairn("import", str(tree), store=store)[1].strip()
        remount(fs, "ro")
        for _ in range(2):
            dumped = subprocess.run([CAIRN, "dump", path, "--store", store], capture_output=True)
            assert (dumped.returncode, dumped.stderr) == (0, b"")
            assert dumped.stdout == subprocess.run(["nix-store", "--dump", str(tree)], capture_output=True,
                                                   check=True).stdout


def test_a_write_to_a_read_only_store_is_one_line(read_only, tmp_path: Path) -> None:
    store, _, _ = read_only
    (tmp_path / "new").write_text("new")
    code, out, err = cairn("import", str(tmp_path / "new"), store=store, ok=False)
    assert code == 1 and out == ""
    assert err.startswith("cairn: error: ") and "read-only" in err and err.count("\n") == 1


@pytest.mark.fuse
@pytest.mark.skipif(not HAVE_FUSE, reason="FUSE is not available")
def test_the_mount_reads_a_read_only_store(read_only, tmp_path: Path) -> None:
    store, path, _ = read_only
    with mounted(["mount", "--store", store, str(tmp_path / "mnt")], tmp_path / "mnt") as mount:
        root = mount.path(Path(path).name)
        assert (root / "nested" / "deeper" / "deepest" / "leaf.txt").read_text() == "leaf\n"
        assert (root / "big.bin").stat().st_size == 3 << 20


def test_a_store_from_before_directory_rows_reads_on_a_read_only_file_system(tmp_path: Path) -> None:
    """Its directories cannot be marked (castore.directories.local): they read as before."""
    from castore.directories.local import DIRECTORY_ROWS, ROWS_WRITTEN
    from castore.local.engine import META
    from castore.local.registry import open_engine
    from store.pathinfo.local import NARSKELETON

    with tmpfs(tmp_path / "fs", 64 << 20) as fs:
        store = f"local://{fs}/store"
        path = cairn("import", str(make_zoo(tmp_path / "zoo", big=1 << 20)), store=store)[1].strip()
        nar = subprocess.run([CAIRN, "dump", path, "--store", store], capture_output=True, check=True).stdout
        engine = open_engine(store)  # what a store of the previous version holds: no rows, no META key
        try:
            rows = [key for key, _ in engine.metadata.items(DIRECTORY_ROWS)]
            skeletons = [key for key, _ in engine.metadata.items(NARSKELETON)]  # nor NAR skeletons
            engine.metadata.commit({}, {DIRECTORY_ROWS: rows, META: [ROWS_WRITTEN], NARSKELETON: skeletons})
        finally:
            engine.close()
        remount(fs, "ro")
        dumped = subprocess.run([CAIRN, "dump", path, "--store", store], capture_output=True)
        assert (dumped.returncode, dumped.stdout) == (0, nar)
        assert b"predates directory rows" in dumped.stderr
