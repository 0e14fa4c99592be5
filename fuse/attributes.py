"""How a node looks to the kernel: modes, sizes and times of a read-only Nix store.

Files are 0444 (0555 when executable), directories 0555, all owned by root with the
mtime Nix gives every store path (1 s after the epoch). Content never changes, so the
kernel may keep entries and attributes for as long as it likes.
"""

from __future__ import annotations

import stat
from typing import TYPE_CHECKING

import pyfuse3

from castore.nodes import DirectoryNode, FileNode, SymlinkNode

if TYPE_CHECKING:
    from fuse.inodes import Entry

CACHE_SECONDS = 24 * 3600.0
"""How long the kernel may trust an entry or its attributes: content is immutable."""
NIX_MTIME_NS = 1_000_000_000
BLOCK_SIZE = 128 * 1024
"""st_blksize: the read size we suggest (a couple of chunks)."""


def attributes(inode: int, entry: Entry) -> pyfuse3.EntryAttributes:
    attr = pyfuse3.EntryAttributes()
    attr.st_ino = inode
    attr.entry_timeout = attr.attr_timeout = CACHE_SECONDS
    attr.st_mode, attr.st_size = _mode_and_size(entry)
    attr.st_nlink = 1
    attr.st_blksize = BLOCK_SIZE
    attr.st_blocks = (attr.st_size + 511) // 512
    attr.st_atime_ns = attr.st_mtime_ns = attr.st_ctime_ns = NIX_MTIME_NS
    return attr


def _mode_and_size(entry: Entry) -> tuple[int, int]:
    if isinstance(entry, FileNode):
        return stat.S_IFREG | (0o555 if entry.executable else 0o444), entry.size
    if isinstance(entry, SymlinkNode):
        return stat.S_IFLNK | 0o777, len(entry.target)
    if isinstance(entry, DirectoryNode):
        return stat.S_IFDIR | 0o555, entry.size
    return stat.S_IFDIR | 0o555, 0  # the root of a store mount
