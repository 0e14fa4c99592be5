"""LMDB index compaction (used only by metadata_lmdb): give back the free pages LMDB keeps after bulk writes.

LMDB never writes a page in place: a commit copies every page it touches, and since chunk
digests are random, a bulk import touches most leaves in each commit. The old copies become
free pages that LMDB reuses but never returns, so a store filled by imports has an index
file about twice its live data (the archived corpus: 3.4 MB file, 1.8 MB live).

Rewriting the file with live pages only is safe while no other process has the store open,
so every process holds a shared flock on users.lock (next to the index) while it has the
index open, and the last user of a process compacts only when it can take that lock exclusively.
"""

from __future__ import annotations

import fcntl
import os

import lmdb

FREE_SHARE = 0.3
"""Compact when at least this share of the file is free pages (a store only read stays below)."""
MIN_BYTES = 1 << 20
"""Smaller files are not worth a rewrite."""
DATA = "data.mdb"


class Users:
    """This process's shared claim on a store's index, held while it has the index open."""

    def __init__(self, meta_dir: str) -> None:
        self._fd = os.open(os.path.join(meta_dir, "users.lock"), os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        try:
            fcntl.flock(self._fd, fcntl.LOCK_SH)  # waits while another process compacts
        except BaseException:
            os.close(self._fd)
            raise

    def alone(self) -> bool:
        """Whether no other process has the store open (the claim becomes exclusive if so)."""
        try:
            fcntl.flock(self._fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return False
        return True

    def release(self) -> None:
        os.close(self._fd)


def free_share(env: lmdb.Environment) -> float:
    """The share of the index file's pages that no database uses."""
    total = env.info()["last_pgno"] + 1
    used = _pages(env.stat())
    with env.begin() as txn:
        for name, _ in txn.cursor():  # the main database holds only the named ones
            used += _pages(txn.stat(env.open_db(name, txn=txn, create=False)))
    return max(0.0, 1 - used / total)


def _pages(stat: dict[str, int]) -> int:
    return stat["branch_pages"] + stat["leaf_pages"] + stat["overflow_pages"]


def worthwhile(env: lmdb.Environment) -> bool:
    size = os.path.getsize(os.path.join(env.path(), DATA))
    return size >= MIN_BYTES and free_share(env) >= FREE_SHARE


def compacted(env: lmdb.Environment) -> str:
    """A compact, synced copy of the index next to it (the caller closes `env` and installs it)."""
    import shutil  # only a compaction needs it, and every command opens the index

    staging = os.path.join(env.path(), "compact.tmp")
    shutil.rmtree(staging, ignore_errors=True)  # left by a crash mid-copy
    os.mkdir(staging)
    env.copy(staging, compact=True)
    copy = os.path.join(staging, DATA)
    fd = os.open(copy, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
    return copy


def install(copy: str, meta_dir: str) -> None:
    """Atomically replace the index with its compact copy; a crash leaves one or the other whole."""
    os.replace(copy, os.path.join(meta_dir, DATA))
    os.rmdir(os.path.dirname(copy))
    fd = os.open(meta_dir, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
