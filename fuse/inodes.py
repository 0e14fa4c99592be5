"""The inode table: stable inode numbers for the lifetime of a mount.

Files and symlinks are keyed by their content (digest, size and executable bit, or
target), so every occurrence of the same file shares one inode and one page cache.
Directories are keyed by where they are (parent inode and name) as well as by digest:
the kernel allows a directory inode only one dentry, and sharing it between two paths
would move that dentry back and forth (a process inside one copy would see its working
directory jump to the other).

Numbers are never reused and entries never dropped, so a number stays valid whatever
the kernel forgets; the table grows with what was explored, a few hundred bytes per entry.
"""

from __future__ import annotations

import errno
from dataclasses import dataclass
from typing import Hashable, Union

import pyfuse3

from castore.nodes import DirectoryNode, FileNode, Node
from fuse.attributes import attributes
from fuse.roots import RootSource

ROOT_INODE = pyfuse3.ROOT_INODE

Entry = Union[Node, RootSource]
"""What an inode shows: a castore node, or (for the root of a store mount) a RootSource."""


@dataclass(slots=True)
class _Record:
    """Never changed once made (a frozen dataclass would cost twice as much to make, once per inode)."""

    entry: Entry
    parent: int
    attributes: pyfuse3.EntryAttributes


class InodeTable:
    """Each inode's entry, the directory it was first found in, and its attributes, made with the
    number: every number is given out by a lookup or a readdir, which both answer with them."""

    def __init__(self, root: DirectoryNode | RootSource) -> None:
        self._records: dict[int, _Record] = {ROOT_INODE: _Record(root, ROOT_INODE, attributes(ROOT_INODE, root))}
        self._by_key: dict[Hashable, pyfuse3.EntryAttributes] = {}
        self._next = ROOT_INODE + 1

    def entry(self, inode: int) -> Entry:
        """What `inode` shows."""
        return self._record(inode).entry

    def parent(self, inode: int) -> int:
        """The directory `inode` was first found in (the root for the root)."""
        return self._record(inode).parent

    def attributes(self, inode: int) -> pyfuse3.EntryAttributes:
        """What stat shows of `inode` (it never changes)."""
        return self._record(inode).attributes

    def add(self, parent: int, node: Node) -> pyfuse3.EntryAttributes:
        """The attributes of the inode of `node` found in directory `parent`: the same inode every time."""
        key = _key(parent, node)
        attrs = self._by_key.get(key)
        if attrs is None:
            inode, self._next = self._next, self._next + 1
            attrs = self._by_key[key] = attributes(inode, node)
            self._records[inode] = _Record(node, parent, attrs)
        return attrs

    def _record(self, inode: int) -> _Record:
        """ENOENT for a number this mount never gave out."""
        record = self._records.get(inode)
        if record is None:
            raise pyfuse3.FUSEError(errno.ENOENT)
        return record


def _key(parent: int, node: Node) -> Hashable:
    if isinstance(node, DirectoryNode):
        return ("d", parent, node.name, node.digest)
    if isinstance(node, FileNode):
        return ("f", node.digest, node.size, node.executable)
    return ("l", node.target)
