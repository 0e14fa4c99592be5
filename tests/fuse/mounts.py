"""Real mounts in tests: the `fuse` marker, and `cairn` mount and daemon processes with clean teardown."""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Callable, Iterator

import pytest
from tests.services.process import stop

CAIRN = str(Path(sys.executable).parent / "cairn")
HAVE_FUSE = os.path.exists("/dev/fuse") and shutil.which("fusermount3") is not None
START_SECONDS = 20

needs_fuse = pytest.mark.skipif(not HAVE_FUSE, reason="FUSE is not available: needs /dev/fuse and fusermount3 "
                                                      "(apt-get install fuse3)")
fuse_test = [pytest.mark.fuse, needs_fuse]
"""`pytestmark = fuse_test` in a module of real-mount tests."""


def cairn(*args: str, check: bool = True) -> subprocess.CompletedProcess:
    """A one-shot command (never a mount: that would not return)."""
    done = subprocess.run([CAIRN, *args], capture_output=True, timeout=120)
    if check and done.returncode:
        raise AssertionError(f"cairn {' '.join(args)} failed: {done.stderr.decode(errors='replace')}")
    return done


def wait_for(condition: Callable[[], bool], what: str, process: subprocess.Popen, log: Path) -> None:
    deadline = time.monotonic() + START_SECONDS
    while not condition():
        if process.poll() is not None:
            raise AssertionError(f"{what}: process exited with {process.returncode}: {log.read_text()}")
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: not ready after {START_SECONDS} s: {log.read_text()}")
        time.sleep(0.05)


class Mount:
    """A running `cairn [castore] mount` process and its mount point."""

    def __init__(self, args: list[str], mountpoint: Path, log: Path) -> None:
        self.mountpoint = mountpoint
        self.log = log
        mountpoint.mkdir(parents=True, exist_ok=True)
        with open(log, "wb") as out:
            self.process = subprocess.Popen([CAIRN, *args], stdout=subprocess.DEVNULL, stderr=out)
        wait_for(lambda: os.path.ismount(mountpoint), f"mount at {mountpoint}", self.process, log)

    def path(self, *parts: str) -> Path:
        return self.mountpoint.joinpath(*parts)

    def signal(self, signum: int, timeout: float = 20) -> int:
        """Send a signal and wait for the process to exit; its status."""
        self.process.send_signal(signum)
        return self.process.wait(timeout)

    def stop(self) -> None:
        """Unmount with fusermount3 -u, then end the process.

        The process is asked to stop, not awaited alone: a copy of the mount in another mount
        namespace (a concurrent `nix` may make one) keeps its connection open after the unmount.
        """
        if os.path.ismount(self.mountpoint):
            subprocess.run(["fusermount3", "-u", "-z", str(self.mountpoint)], capture_output=True)
        stop(self.process, 10)


@contextlib.contextmanager
def mounted(args: list[str], mountpoint: Path) -> Iterator[Mount]:
    """Run `cairn <args>` (which names `mountpoint`) until the block ends; teardown always unmounts."""
    mount = Mount(args, mountpoint, mountpoint.with_name(mountpoint.name + ".log"))
    try:
        yield mount
    finally:
        mount.stop()


@contextlib.contextmanager
def daemon(store: str, socket: Path) -> Iterator[str]:
    """`cairn daemon` over `store` on a unix socket; yields its grpc+unix URL."""
    url = f"grpc+unix://{socket}"
    log = socket.with_suffix(".log")
    with open(log, "wb") as out:
        process = subprocess.Popen([CAIRN, "daemon", "--listen", url, "--store", store],
                                   stdout=subprocess.DEVNULL, stderr=out)
    try:
        wait_for(socket.exists, f"daemon on {socket}", process, log)
        yield url
    finally:
        stop(process, 10)
