"""Nodes and directories as values: equal only to their own kind, immutable, checked whenever built.

Nodes are named tuples (castore.value), which build faster than frozen dataclasses; these tests
hold them to what the dataclasses gave: a plain tuple or a node of another kind never matches
one, and no way of making or changing one skips its checks."""

from __future__ import annotations

import copy
import pickle

import pytest

from castore.digest import B3Digest
from castore.errors import ValidationError
from castore.nodes import Directory, DirectoryNode, FileNode, SymlinkNode

DIGEST = B3Digest.of(b"x")


def test_a_node_equals_only_a_node_of_its_kind_with_equal_fields():
    file, same = FileNode(b"a", DIGEST, 1), FileNode(b"a", DIGEST, 1, False)
    assert file == same and not file != same and hash(file) == hash(same)
    assert file != (b"a", DIGEST, 1, False) and not file == (b"a", DIGEST, 1, False)
    assert (b"a", DIGEST, 1, False) != file and not (b"a", DIGEST, 1, False) == file
    assert DirectoryNode(b"a", DIGEST, 1) != (b"a", DIGEST, 1)
    assert SymlinkNode(b"a", b"t") != (b"a", b"t")
    assert FileNode(b"a", DIGEST, 1, True) != FileNode(b"a", DIGEST, 1, False)


def test_sets_and_dicts_keep_node_kinds_and_plain_tuples_apart():
    nodes = [DirectoryNode(b"a", DIGEST, 1), FileNode(b"a", DIGEST, 1), SymlinkNode(b"a", b"t")]
    tuples = [(b"a", DIGEST, 1), (b"a", DIGEST, 1, False), (b"a", b"t")]
    assert len({*nodes, *tuples}) == 6
    kinds = {node: type(node).__name__ for node in nodes}
    assert [kinds[node] for node in nodes] == ["DirectoryNode", "FileNode", "SymlinkNode"]
    assert all(t not in kinds for t in tuples)
    assert {FileNode(b"a", DIGEST, 1): 1}[FileNode(b"a", DIGEST, 1, False)] == 1


def test_nodes_have_no_order():
    with pytest.raises(TypeError):
        sorted([FileNode(b"b", DIGEST, 1), FileNode(b"a", DIGEST, 1)])
    with pytest.raises(TypeError):
        FileNode(b"a", DIGEST, 1) <= FileNode(b"b", DIGEST, 1)  # noqa: B015
    with pytest.raises(TypeError):
        FileNode(b"a", DIGEST, 1) < (b"b",)  # noqa: B015
    with pytest.raises(TypeError):
        (b"b",) > SymlinkNode(b"a", b"t")  # noqa: B015


def test_nodes_and_directories_are_immutable():
    node = FileNode(b"a", DIGEST, 1)
    with pytest.raises(AttributeError):
        node.size = 2  # type: ignore[misc]
    with pytest.raises(AttributeError):
        node.other = 2  # type: ignore[attr-defined]
    directory = Directory(files=(node,))
    with pytest.raises(AttributeError):
        directory.files = ()  # type: ignore[misc]
    with pytest.raises(AttributeError):
        del directory.size
    assert directory.files == (node,) and directory.size == 2


def test_replace_make_copy_and_pickle_check_the_fields_again():
    node = FileNode(b"a", DIGEST, 1)
    assert node._replace(size=5) == FileNode(b"a", DIGEST, 5)
    assert type(node._replace(digest=bytes(DIGEST)).digest) is B3Digest
    with pytest.raises(ValidationError, match="size out of range"):
        node._replace(size=-1)
    with pytest.raises(ValidationError, match="size out of range"):
        FileNode._make((b"a", DIGEST, -1, False))
    with pytest.raises(ValidationError, match="must be 1..4095 bytes"):
        SymlinkNode(b"a", b"t")._replace(target=b"")
    with pytest.raises(TypeError):
        node._replace(target=b"t")
    assert copy.copy(node) == node and pickle.loads(pickle.dumps(node)) == node


def test_nodes_are_built_by_keyword_and_show_their_fields_in_their_reprs():
    node = FileNode(name=b"a", digest=DIGEST, size=1, executable=True)
    assert repr(node) == f"FileNode(name=b'a', digest={DIGEST!r}, size=1, executable=True)"
    assert repr(Directory(symlinks=(SymlinkNode(b"l", b"t"),))) == \
        "Directory(directories=(), files=(), symlinks=(SymlinkNode(name=b'l', target=b't'),))"


def test_directories_compare_by_their_entries():
    one, two = FileNode(b"a", DIGEST, 1), FileNode(b"b", DIGEST, 1)
    stored = Directory.decode_stored(Directory(files=(one, two)).encoded, Directory(files=(one, two)).digest)
    assert stored == Directory(files=(one, two)) and hash(stored) == hash(Directory(files=(one, two)))
    assert stored.files == (one, two) and type(stored.files[0]) is FileNode
    assert type(stored.files[0].digest) is B3Digest
    assert Directory(files=(one,)) != Directory(files=(one, two))
    assert Directory() != ((), (), ())
