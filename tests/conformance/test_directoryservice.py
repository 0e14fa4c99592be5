"""The DirectoryService contract (castore/directories/service.py, SPEC 2-3), on every backend.

Names, sorting and digests are checked when a Directory is built (castore.nodes), so no service
receives a bad one; the gRPC edge's refusal of such messages is tested in
tests/castore/test_grpc_directories.py.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from castore.digest import EMPTY_DIGEST, B3Digest
from castore.directories.service import DirectoryService
from castore.errors import ValidationError
from castore.nodes import Directory, DirectoryNode, FileNode, SymlinkNode
from tests.conformance.backends import Backend

FILE = B3Digest.of(b"hello\n")
UNKNOWN = B3Digest.of(b"never sent")


def diamond() -> list[Directory]:
    """root -> {a, b, link}, a -> leaf, b -> {leaf, c}, c -> leaf: leaf is shared three ways."""
    leaf = Directory(files=(FileNode(b"hello", FILE, 6, executable=True),))
    c = Directory(directories=(leaf.as_node(b"leaf"),))
    a = Directory(directories=(leaf.as_node(b"x"),))
    b = Directory(directories=(c.as_node(b"c"), leaf.as_node(b"y")))
    root = Directory.of([a.as_node(b"a"), b.as_node(b"b"), SymlinkNode(b"link", b"a/x")])
    return [leaf, c, a, b, root]


def tree(n: int = 0) -> list[Directory]:
    """A small leaves-first closure; `n` varies the names so closures differ."""
    leaf = Directory(files=(FileNode(b"file%d" % n, FILE, 6),))
    mid = Directory(directories=(leaf.as_node(b"leaf"),), symlinks=(SymlinkNode(b"link", b"leaf/file"),))
    root = Directory.of([mid.as_node(b"mid"), leaf.as_node(b"other"), FileNode(b"x", FILE, 6, True)])
    return [leaf, mid, root]


LEAF = diamond()[0]


@pytest.mark.parametrize("closure", [diamond(), tree(), [LEAF]], ids=["diamond", "tree", "leaf"])
def test_put_returns_the_root_and_get_returns_each_directory(directories: DirectoryService,
                                                             closure: list[Directory]) -> None:
    assert directories.put(closure) == closure[-1].digest
    for directory in closure:
        assert directories.get(directory.digest) == directory


def test_the_empty_directory_round_trips(directories: DirectoryService) -> None:
    assert directories.put([Directory()]) == EMPTY_DIGEST
    assert directories.get(EMPTY_DIGEST) == Directory()
    assert list(directories.get_recursive(EMPTY_DIGEST)) == [Directory()]


def test_get_many_answers_in_the_order_asked_with_none_for_unknown(directories: DirectoryService) -> None:
    leaf, c, a, b, root = diamond()
    directories.put([leaf, c, a, b, root])
    assert directories.get_many([c.digest, UNKNOWN, root.digest, leaf.digest, c.digest]) == [c, None, root, leaf, c]
    assert directories.get_many([]) == []


def test_recursive_get_is_breadth_first_each_once_children_after_parents(directories: DirectoryService) -> None:
    leaf, c, a, b, root = diamond()
    directories.put([leaf, c, a, b, root])
    got = list(directories.get_recursive(root.digest))
    assert got == [root, a, b, leaf, c]
    leaf, mid, root = tree()
    directories.put([leaf, mid, root])
    assert list(directories.get_recursive(root.digest)) == [root, mid, leaf]


def test_recursive_get_of_encodings_gives_those_of_recursive_get(directories: DirectoryService) -> None:
    """What a server sends on (a backend may skip decoding them)."""
    leaf, c, a, b, root = diamond()
    directories.put([leaf, c, a, b, root])
    assert list(directories.get_recursive_encoded(root.digest)) == [d.encoded for d in (root, a, b, leaf, c)]
    assert list(directories.get_recursive_encoded(leaf.digest)) == [leaf.encoded]
    assert list(directories.get_recursive_encoded(UNKNOWN)) == []


def test_recursive_get_of_a_leaf_is_just_the_leaf(directories: DirectoryService) -> None:
    directories.put([LEAF])
    assert list(directories.get_recursive(LEAF.digest)) == [LEAF]


def test_unknown_directory_is_none_and_its_recursive_get_empty(directories: DirectoryService) -> None:
    assert directories.get(UNKNOWN) is None
    assert directories.get_many([UNKNOWN]) == [None]
    assert list(directories.get_recursive(UNKNOWN)) == []


def test_duplicates_in_a_put_are_tolerated(directories: DirectoryService) -> None:
    leaf, c, a, b, root = diamond()
    assert directories.put([leaf, leaf, c, a, leaf, b, root]) == root.digest
    assert list(directories.get_recursive(root.digest)) == [root, a, b, leaf, c]


def _parent_of(child: Directory, size: int) -> Directory:
    return Directory(directories=(DirectoryNode(b"d", child.digest, size),))


INVALID_CLOSURES = {
    "unknown child": ([_parent_of(Directory(files=(FileNode(b"f", FILE, 6),)), 2)], "not sent before"),
    "child after parent": ([_parent_of(LEAF, LEAF.size), LEAF], "not sent before"),
    "root missing its middle": (tree()[1:], "not sent before"),
    "dangling": ([LEAF, Directory(symlinks=(SymlinkNode(b"s", b"t"),))], "not reachable"),
    "unrelated directory in the middle": (
        [tree()[0], Directory(files=(FileNode(b"unrelated", FILE, 6),)), *tree()[1:]], "not reachable"),
    "wrong edge size": ([LEAF, _parent_of(LEAF, LEAF.size + 1)], "size"),
    "empty": ([], "no directories"),
}


@pytest.mark.parametrize("case", INVALID_CLOSURES, ids=list(INVALID_CLOSURES))
def test_an_invalid_closure_is_a_validation_error_and_stores_nothing(directories: DirectoryService,
                                                                     case: str) -> None:
    closure, reason = INVALID_CLOSURES[case]
    with pytest.raises(ValidationError, match=reason):
        directories.put(closure)
    for directory in closure:
        assert directories.get(directory.digest) is None


def test_failing_source_of_a_put_raises_its_own_error_and_stores_nothing(directories: DirectoryService) -> None:
    def closure():
        yield LEAF
        raise KeyError("source broke")

    with pytest.raises(KeyError, match="source broke"):
        directories.put(closure())
    assert directories.get(LEAF.digest) is None


def test_puts_in_a_batch_are_readable_before_it_ends(directories: DirectoryService) -> None:
    with directories.batch():
        roots = [directories.put(tree(n)) for n in range(20)]
        assert all(directories.get(r) is not None for r in roots)
        with directories.batch():  # re-entrant
            nested = directories.put(diamond())
            assert directories.get(nested) == diamond()[-1]
    assert [list(directories.get_recursive(r))[-1] for r in roots] == [tree(n)[0] for n in range(20)]


def test_directories_survive_reopening_and_batches_commit_at_the_outermost_exit(durable: Backend,
                                                                               tmp_path: Path) -> None:
    with durable.open(tmp_path) as store:
        service = store.castore.directories
        with service.batch():
            roots = [service.put(tree(n)) for n in range(50)]
            assert all(service.get(r) is not None for r in roots)
            with service.batch():
                roots.append(service.put(diamond()))
        unbatched = service.put([Directory(symlinks=(SymlinkNode(b"alone", b"x"),))])
    with durable.open(tmp_path) as store:
        service = store.castore.directories
        for n, root in enumerate(roots[:50]):
            assert list(service.get_recursive(root))[-1] == tree(n)[0]
        assert list(service.get_recursive(roots[50])) == [diamond()[i] for i in (4, 2, 3, 0, 1)]
        assert service.get(unbatched) is not None
