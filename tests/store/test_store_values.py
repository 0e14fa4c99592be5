"""Store paths, hashes, content addresses and PathInfos as values (named tuples, see castore.value):
equal only to their own type, ordered only as Nix orders paths, checked whenever built or changed."""

from __future__ import annotations

import pytest

from castore.digest import B3Digest
from castore.errors import ValidationError
from castore.nodes import FileNode, SymlinkNode
from store.contentaddress import CAMethod, ContentAddress
from store.nixhash import HashAlgo, NixHash
from store.pathinfo.model import PathInfo
from store.storepath import StorePath

A = StorePath(b"\x01" + bytes(19), "a")
B = StorePath(bytes(19) + b"\x01", "b")  # a smaller digest, a later basename
SHA = NixHash(HashAlgo.SHA256, bytes(32))


def info(**fields: object) -> PathInfo:
    return PathInfo(A, FileNode(b"", B3Digest.of(b"x"), 1), 8, bytes(32), **fields)  # type: ignore[arg-type]


def test_values_of_different_types_or_plain_tuples_are_never_equal():
    values = [A, SHA, ContentAddress(CAMethod.NAR, SHA), info(), SymlinkNode(b"a", b"a")]
    tuples = [tuple(value) for value in values]
    assert len({*values, *tuples}) == 2 * len(values)
    assert all(value != t and t != value and not value == t for value, t in zip(values, tuples))
    assert StorePath(b"\x01" + bytes(19), "a") == A and hash(StorePath(b"\x01" + bytes(19), "a")) == hash(A)
    assert {A: "a"}[StorePath(b"\x01" + bytes(19), "a")] == "a"


def test_store_paths_order_by_basename_both_ways_and_hashes_not_at_all():
    assert A.digest > B.digest and A < B and B > A and sorted([B, A]) == [A, B]
    with pytest.raises(TypeError):
        sorted([SHA, NixHash(HashAlgo.SHA256, b"\x01" * 32)])


def test_replace_checks_again():
    assert A._replace(name="c") == StorePath(A.digest, "c")
    with pytest.raises(ValidationError, match="invalid store path name"):
        A._replace(name="a/b")
    with pytest.raises(ValidationError, match="sha1 digest must be 20 bytes, got 32"):
        SHA._replace(algo=HashAlgo.SHA1, digest=bytes(32))
    with pytest.raises(ValidationError, match="text content addresses are sha256"):
        ContentAddress(CAMethod.NAR, NixHash(HashAlgo.SHA1, bytes(20)))._replace(method=CAMethod.TEXT)
    moved = info()._replace(store_path=B)
    assert moved.node.name == B.basename.encode()  # the root node is named for its path again
    with pytest.raises(ValidationError, match="nar_size must be positive"):
        info()._replace(nar_size=0)


def test_values_are_immutable():
    with pytest.raises(AttributeError):
        A.name = "b"  # type: ignore[misc]
    with pytest.raises(AttributeError):
        info().ca = None  # type: ignore[misc]
    with pytest.raises(AttributeError):
        SHA.other = 1  # type: ignore[attr-defined]
