"""The mount's lifecycle: mount, serve requests on trio, unmount on SIGINT, SIGTERM or fusermount3 -u.

The mount is read-only (`ro`), with `default_permissions` so the kernel checks modes.
A process killed without unmounting leaves a dead mount behind ("Transport endpoint is
not connected"); `fusermount3 -u` clears it and the mount point can be used again.
"""

from __future__ import annotations

import errno
import gc
import logging
import os
import signal
import stat
from typing import AsyncIterator

import pyfuse3
import trio

from castore.errors import CastoreError
from castore.nodes import DirectoryNode
from castore.url import CAStore
from fuse import loop
from fuse.operations import Operations
from fuse.options import MountOptions
from fuse.roots import RootSource

log = logging.getLogger(__name__)

GC_THRESHOLD = 10_000
"""Allocations between collections of the youngest generation (Python's default: 700)."""


class MountError(CastoreError):
    """A mount point that cannot be used, said in one line."""


def mount(castore: CAStore, root: DirectoryNode | RootSource, mountpoint: str, options: MountOptions) -> int:
    """Serve `root` at `mountpoint` until unmounted or signalled; the exit status (0)."""
    mountpoint = os.path.abspath(mountpoint)
    _check_mountpoint(mountpoint)
    _collect_less()
    trio.run(_serve, castore, root, mountpoint, options)
    return 0


def _collect_less() -> None:
    """A mount allocates mostly what lives as long as it does (inodes, listings) and almost no
    garbage in cycles, so the default collections find next to nothing, yet took 2% of a tree
    walk and paused requests for up to 30 ms. What is loaded by now is frozen: no full
    collection goes over it again."""
    gc.freeze()
    gc.set_threshold(GC_THRESHOLD, 10, 10)


def _fuse_options(options: MountOptions) -> set[str]:
    chosen = {"ro", "default_permissions", "fsname=cairn", "subtype=cairn"}
    if options.allow_other:
        chosen.add("allow_other")
    return chosen


async def _serve(castore: CAStore, root: DirectoryNode | RootSource, mountpoint: str,
                 options: MountOptions) -> None:
    with trio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
        async with trio.open_nursery() as nursery:  # owns read-ahead and the signal watcher
            ops = Operations(castore.blobs, castore.directories, root, nursery, xattr=options.xattr)
            try:
                pyfuse3.init(ops, mountpoint, _fuse_options(options))
            except RuntimeError as e:
                raise MountError(f"cannot mount at {mountpoint}: {e}") from None
            try:
                nursery.start_soon(_terminate_on_signal, signals)
                log.info("mounted at %s; unmount with SIGTERM, SIGINT or fusermount3 -u", mountpoint)
                await loop.main()
            finally:
                pyfuse3.close(unmount=True)
                nursery.cancel_scope.cancel()
    log.info("unmounted %s", mountpoint)


async def _terminate_on_signal(signals: AsyncIterator[int]) -> None:
    async for signum in signals:
        log.info("%s: unmounting", signal.Signals(signum).name)
        pyfuse3.terminate()
        return


def _check_mountpoint(mountpoint: str) -> None:
    """Say plainly what is wrong before libfuse says it less plainly (or mounts over a dead mount).

    The directory is opened, not only stat'ed: the kernel may answer a stat of a dead FUSE
    mount from its cache, but an open reaches the file system and fails with ENOTCONN.
    """
    try:
        fd = os.open(mountpoint, os.O_RDONLY)
    except OSError as e:
        if e.errno == errno.ENOTCONN:
            raise MountError(f"{mountpoint} is still mounted by a process that died: "
                             f"run `fusermount3 -u {mountpoint}` first") from None
        raise
    try:
        is_directory = stat.S_ISDIR(os.fstat(fd).st_mode)
    finally:
        os.close(fd)
    if not is_directory:
        raise MountError(f"{mountpoint} is not a directory")
