"""The castore model: digests, canonical encoding, validation, size rule (SPEC section 2)."""

from __future__ import annotations

import pytest
from hypothesis import given, strategies as st

from castore.digest import EMPTY_DIGEST, B3Digest
from castore.errors import ValidationError
from castore.nodes import (Directory, DirectoryNode, FileNode, SymlinkNode, decode_node,
                           encode_node)


def test_blob_digests_match_vectors(vectors):
    for v in vectors["blobs"]:
        data = bytes.fromhex(v["data_hex"]) if "data_hex" in v else v["data_utf8"].encode()
        assert B3Digest.of(data).hex() == v["blake3"]
        if "b3_text" in v:
            assert B3Digest.of(data).b3() == v["b3_text"]
            assert B3Digest.parse(v["b3_text"]) == B3Digest.of(data)


def test_directory_encodings_match_vectors(vectors):
    for v in vectors["directories"]:
        directory = Directory.decode(bytes.fromhex(v["proto_hex"]))
        assert directory.encoded.hex() == v["proto_hex"]
        assert directory.digest.hex() == v["blake3"]
        assert directory.size == v["size"]


def test_root_nodes_match_vectors(vectors):
    for v in vectors["root_nodes"]:
        node = decode_node(bytes.fromhex(v["proto_hex"]))
        assert encode_node(node).hex() == v["proto_hex"]


def test_empty_directory_digest_is_empty_blob_digest():
    assert Directory().encoded == b""
    assert Directory().digest == EMPTY_DIGEST


def test_digest_text_forms():
    d = B3Digest.of(b"x")
    assert B3Digest.parse(d.b3()) == d
    assert B3Digest.parse("blake3-" + d.b3()[3:]) == d
    assert B3Digest.parse(d.hex()) == d
    for bad in ("b3:!!", "b3:AAAA", "xyz", ""):
        with pytest.raises(ValidationError):
            B3Digest.parse(bad)


def test_size_rule_counts_two_per_entry_plus_children():
    child = Directory.of([FileNode(b"f", EMPTY_DIGEST, 0), SymlinkNode(b"l", b"t")])
    assert child.size == 4
    parent = Directory.of([child.as_node(b"c"), FileNode(b"g", EMPTY_DIGEST, 0)])
    assert parent.size == 2 * 2 + 4


D = EMPTY_DIGEST


@pytest.mark.parametrize("make, reason", [
    (lambda: Directory(files=(FileNode(b"b", D, 0), FileNode(b"a", D, 0))), "unsorted"),
    (lambda: Directory(files=(FileNode(b"a", D, 0), FileNode(b"a", D, 0))), "duplicate"),
    (lambda: Directory(directories=(DirectoryNode(b"a", D, 0),), files=(FileNode(b"a", D, 0),)), "duplicate"),
    (lambda: Directory(files=(FileNode(b"", D, 0),)), "empty name"),
    (lambda: Directory(files=(FileNode(b"a/b", D, 0),)), "'/'"),
    (lambda: Directory(files=(FileNode(b"a\0", D, 0),)), "NUL"),
    (lambda: Directory(files=(FileNode(b"..", D, 0),)), "invalid name"),
    (lambda: Directory(files=(FileNode(b".", D, 0),)), "invalid name"),
    (lambda: Directory(files=(FileNode(b"x" * 256, D, 0),)), "longer than"),
    (lambda: Directory(files=(FileNode(b"a", b"short", 0),)), "32 bytes"),
    (lambda: Directory(symlinks=(SymlinkNode(b"a", b""),)), "target"),
    (lambda: Directory(symlinks=(SymlinkNode(b"a", b"x\0y"),)), "NUL"),
    (lambda: Directory(symlinks=(SymlinkNode(b"a", b"x" * 4096),)), "target"),
    (lambda: Directory(directories=(DirectoryNode(b"a", D, 2**64 - 1), DirectoryNode(b"b", D, 2))), "overflow"),
])
def test_invalid_directories_are_rejected_with_a_reason(make, reason):
    with pytest.raises(ValidationError, match=reason):
        make()


def test_decode_ignores_unknown_fields_in_the_digest():
    clean = Directory.of([FileNode(b"a", D, 1)])
    with_unknown = clean.encoded + bytes([0x7A, 0x01, 0x00])  # field 15, length-delimited, empty
    assert Directory.decode(with_unknown).digest == clean.digest


def test_malformed_bytes_are_rejected():
    with pytest.raises(ValidationError):
        Directory.decode(b"\x0a\xff")


names = st.binary(min_size=1, max_size=40).filter(lambda n: b"/" not in n and b"\0" not in n
                                                 and n not in (b".", b".."))
digests = st.binary(min_size=32, max_size=32)
file_nodes = st.builds(FileNode, names, digests, st.integers(0, 2**40), st.booleans())
link_nodes = st.builds(SymlinkNode, names, st.binary(min_size=1, max_size=100).filter(lambda t: b"\0" not in t))
dir_nodes = st.builds(DirectoryNode, names, digests, st.integers(0, 2**40))


@given(st.lists(st.one_of(file_nodes, link_nodes, dir_nodes), max_size=20, unique_by=lambda n: n.name))
def test_encode_decode_roundtrip_keeps_the_digest(nodes):
    directory = Directory.of(nodes)
    again = Directory.decode(directory.encoded)
    assert again == directory
    assert again.digest == directory.digest
    assert [n.name for n in directory.nodes()] == sorted(n.name for n in nodes)


@given(st.lists(st.one_of(file_nodes, link_nodes), min_size=2, max_size=10, unique_by=lambda n: n.name))
def test_any_unsorted_list_is_rejected(nodes):
    files = tuple(n for n in nodes if isinstance(n, FileNode))
    if len(files) < 2:
        return
    with pytest.raises(ValidationError):
        Directory(files=tuple(sorted(files, key=lambda n: n.name, reverse=True)))
