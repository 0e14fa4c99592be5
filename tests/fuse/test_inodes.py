"""The inode table: stable numbers, shared by equal files, distinct for directories in distinct places."""

from __future__ import annotations

import errno

import pyfuse3
import pytest

from castore.digest import B3Digest
from castore.nodes import DirectoryNode, FileNode, SymlinkNode
from fuse.inodes import ROOT_INODE, InodeTable

D1, D2 = B3Digest.of(b"one"), B3Digest.of(b"two")


def test_the_same_node_gets_the_same_inode_every_time() -> None:
    table = InodeTable(DirectoryNode(b"", D1, 0))
    node = FileNode(b"a", D2, 3)
    first = table.add(ROOT_INODE, node)
    assert first.st_ino != ROOT_INODE
    assert table.add(ROOT_INODE, node) is first
    assert table.entry(first.st_ino) == node
    assert table.attributes(first.st_ino) is first


def test_equal_files_and_symlinks_share_an_inode_wherever_they_are() -> None:
    table = InodeTable(DirectoryNode(b"", D1, 0))
    sub = table.add(ROOT_INODE, DirectoryNode(b"sub", D1, 0)).st_ino
    assert table.add(ROOT_INODE, FileNode(b"a", D2, 3)) is table.add(sub, FileNode(b"b", D2, 3))
    assert table.add(ROOT_INODE, SymlinkNode(b"l", b"t")) is table.add(sub, SymlinkNode(b"m", b"t"))
    executable = table.add(ROOT_INODE, FileNode(b"x", D2, 3, True))
    assert table.add(ROOT_INODE, FileNode(b"a", D2, 3)).st_ino != executable.st_ino


def test_equal_directories_in_different_places_get_their_own_inodes() -> None:
    table = InodeTable(DirectoryNode(b"", D1, 0))
    first = table.add(ROOT_INODE, DirectoryNode(b"x", D2, 0)).st_ino
    second = table.add(ROOT_INODE, DirectoryNode(b"y", D2, 0)).st_ino
    nested = table.add(first, DirectoryNode(b"x", D2, 0)).st_ino
    assert len({first, second, nested}) == 3
    assert table.parent(nested) == first
    assert table.parent(ROOT_INODE) == ROOT_INODE


def test_an_inode_never_given_out_is_enoent() -> None:
    table = InodeTable(DirectoryNode(b"", D1, 0))
    for ask in (table.entry, table.attributes):
        with pytest.raises(pyfuse3.FUSEError) as raised:
            ask(12345)
        assert raised.value.errno == errno.ENOENT
