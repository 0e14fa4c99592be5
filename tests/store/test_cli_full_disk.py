"""Every command family on a store whose disk is full (a real tmpfs, filled): a write is one
line (`cairn: error: ...`) and exit 1, never a traceback; reads still work; once there is room
the same commands succeed."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from tests.small_fs import fill, free_space, needs_root, tmpfs
from tests.store.test_archive import plain_cache
from tests.store.test_stats_verify import CAIRN

pytestmark = needs_root


def run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([CAIRN, *args], capture_output=True, text=True, timeout=120)


def ok(*args: str) -> str:
    done = run(*args)
    assert done.returncode == 0, done.stderr
    return done.stdout


def one_line_error(done: subprocess.CompletedProcess) -> str:
    assert done.returncode == 1, done.stderr
    assert done.stderr.startswith("cairn: error: ") and done.stderr.count("\n") == 1, done.stderr
    return done.stderr


@pytest.fixture(scope="module")
def full(tmp_path_factory):
    """A store holding one path on a full tmpfs, a source store and a binary cache holding more.
    Yields (tmpfs, store URL, kept path, paths to copy, file cache URL)."""
    tmp = tmp_path_factory.mktemp("full")
    (tmp / "kept").write_text("kept\n")
    (tmp / "new").write_bytes(bytes(range(256)) * 4096)
    source = f"local://{tmp}/source"
    new = ok("import", "--store", source, str(tmp / "new")).strip()
    cache = tmp / "cache"
    plain_cache(cache, tmp, ["archived"])
    with tmpfs(tmp / "fs", 8 << 20) as fs:
        store = f"local://{fs}/store"
        kept = ok("import", "--store", store, str(tmp / "kept")).strip()
        fill(fs)
        yield fs, store, kept, new, tmp, f"file://{cache}"


def commands(store: str, kept: str, new: str, tmp: Path, cache: str) -> dict[str, list[str]]:
    """One write of each command family."""
    return {
        "import": ["import", "--store", store, str(tmp / "new")],
        "castore import": ["castore", "import", "--store", store, str(tmp / "new")],
        "copy": ["copy", "--from", f"local://{tmp}/source", "--to", store, new],
        "archive": ["archive", "--store", store, cache],
        "root add": ["root", "add", "--store", store, "keep", kept],
        "delete": ["delete", "--store", store, kept],
        "gc": ["gc", "--store", store, "--everything"],
    }


@pytest.mark.parametrize("family", ["import", "castore import", "copy", "archive", "root add", "delete", "gc"])
def test_a_write_on_a_full_disk_is_one_line(full, family: str) -> None:
    fs, store, kept, new, tmp, cache = full
    done = run(*commands(store, kept, new, tmp, cache)[family])
    if family == "archive":  # one line per path that failed, then the summary
        assert done.returncode == 1 and "Traceback" not in done.stderr
        assert done.stderr.startswith("cairn: error: ") and done.stderr.count("\n") == 2, done.stderr
    else:
        one_line_error(done)
    assert ok("path-info", "--store", store, kept).startswith(kept)  # still readable
    assert "0 problems" in run("verify", "--all", "--store", store).stdout + run("verify", "--all", "--store", store).stderr


def test_reads_work_on_a_full_disk_and_writes_once_there_is_room(full) -> None:
    fs, store, kept, new, tmp, cache = full
    assert b"kept\n" in subprocess.run([CAIRN, "dump", "--store", store, kept], capture_output=True, check=True).stdout
    assert "stored bytes" in ok("stats", "--store", store)
    free_space(fs)
    try:
        assert ok("import", "--store", store, str(tmp / "new")).strip() == new
        ok("root", "add", "--store", store, "keep", kept)
    finally:
        fill(fs)


def test_an_error_no_layer_named_is_one_line_too(monkeypatch, capsys, tmp_path: Path) -> None:
    from store import cli

    def broken(args) -> int:
        raise RuntimeError("something no layer expected\nsecond line")

    monkeypatch.setattr(cli, "cmd_stats", broken)
    assert cli.main(["stats", "--store", f"local://{tmp_path}/s"]) == 1
    err = capsys.readouterr().err
    assert err == "cairn: error: RuntimeError: something no layer expected (run with -v for the traceback)\n"


def test_packs_put_before_a_failed_metadata_commit_are_reclaimed_by_gc(tmp_path: Path) -> None:
    """The pack was put, its records never committed: nothing names it, and `cairn gc` deletes it
    (as it does the packs of a writer that died before naming them)."""
    packs = tmp_path / "packs"
    (tmp_path / "kept").write_text("kept\n")
    lost = tmp_path / "lost"
    for i in range(3000):  # thousands of records: the commit must grow LMDB's file
        (lost / str(i % 30)).mkdir(parents=True, exist_ok=True)
        (lost / str(i % 30) / str(i)).write_bytes(os.urandom(64))
    with tmpfs(tmp_path / "fs", 8 << 20) as fs:
        store = f"local://{fs}/store?packs=file://{packs}"
        kept = ok("import", "--store", store, str(tmp_path / "kept")).strip()
        ok("root", "add", "--store", store, "kept", kept)
        before = set(packs.rglob("*.pack"))
        fill(fs, leave=64 << 10)  # room for small commits (a block of pack numbers), not for it
        assert "mdb_txn_commit" in one_line_error(run("import", "--store", store, str(lost)))
        free_space(fs)
        orphans = set(packs.rglob("*.pack")) - before
        assert orphans  # put, then the metadata commit failed
        for _ in range(2):  # the first finds it unnamed, the next (a grace period later) deletes it
            ok("gc", "--store", store, "--grace", "0")
        assert not orphans & set(packs.rglob("*.pack"))
        assert ok("path-info", "--store", store, kept).startswith(kept)
        assert "0 problems" in run("verify", "--all", "--store", store).stderr + ok("verify", "--all", "--store", store)
