"""Real small file systems for failure tests: a tmpfs of a few MB to fill, or to remount read-only.

Mounting needs root (the test machines run as root); without it the tests that use these skip.
"""

from __future__ import annotations

import contextlib
import errno
import os
import subprocess
from pathlib import Path
from typing import Iterator

import pytest

needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="mounting a tmpfs needs root")
FILLER = ".filler"


@contextlib.contextmanager
def tmpfs(where: Path, size: int) -> Iterator[Path]:
    """A tmpfs of `size` bytes mounted at `where` until the block ends."""
    where.mkdir(parents=True, exist_ok=True)
    subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(where)], check=True)
    try:
        yield where
    finally:
        subprocess.run(["umount", "-l", str(where)], check=True)


def remount(where: Path, mode: str) -> None:
    """Make a mounted tmpfs read-only ("ro") or writable again ("rw")."""
    subprocess.run(["mount", "-o", f"remount,{mode}", str(where)], check=True)


def fill(where: Path, leave: int = 0) -> None:
    """Take all but about `leave` bytes of the file system holding `where` with a filler file."""
    path = where / FILLER
    block = bytes(1 << 16)
    with open(path, "ab", buffering=0) as out:
        try:
            while True:
                out.write(block)
        except OSError as e:
            if e.errno != errno.ENOSPC:
                raise
    os.truncate(path, max(0, path.stat().st_size - leave))


def free_space(where: Path) -> None:
    """Give back what fill took."""
    (where / FILLER).unlink(missing_ok=True)
