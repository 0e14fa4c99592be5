"""The canonical encoding without protobuf: the same bytes protobuf writes, and a reader that
accepts those bytes only (SPEC 2: a digest covers the canonical encoding)."""

from __future__ import annotations

import pytest
from hypothesis import given, strategies as st

from castore import wire
from castore.digest import EMPTY_DIGEST, B3Digest
from castore.errors import ValidationError
from castore.nodes import (Directory, DirectoryNode, FileNode, SymlinkNode, decode_canonical_node, decode_node,
                           encode_node, node_to_proto, rename)

names = st.binary(min_size=1, max_size=300).filter(lambda n: b"/" not in n and b"\0" not in n
                                                  and n not in (b".", b".."))
digests = st.binary(min_size=32, max_size=32)
sizes = st.integers(0, 2**64 - 1)
file_nodes = st.builds(FileNode, names.filter(lambda n: len(n) <= 255), digests, sizes, st.booleans())
link_nodes = st.builds(SymlinkNode, names.filter(lambda n: len(n) <= 255),
                       st.binary(min_size=1, max_size=4095).filter(lambda t: b"\0" not in t))
dir_nodes = st.builds(DirectoryNode, names.filter(lambda n: len(n) <= 255), digests, st.integers(0, 2**40))
nodes = st.one_of(file_nodes, link_nodes, dir_nodes)
directories = st.lists(nodes, max_size=12, unique_by=lambda n: n.name).map(Directory.of)


@given(directories)
def test_the_encoding_is_what_protobuf_serialises(directory: Directory):
    assert directory.encoded == directory.to_proto().SerializeToString()


@given(nodes, st.sampled_from([b"", b"a-name"]))
def test_a_node_encodes_as_protobuf_serialises_it(node, name: bytes):
    node = rename(node, name)
    assert encode_node(node) == node_to_proto(node).SerializeToString()
    assert decode_canonical_node(encode_node(node)) == node


@given(directories)
def test_canonical_bytes_decode_to_the_directory_and_keep_its_digest(directory: Directory):
    again = Directory.decode_canonical(directory.encoded)
    assert again == directory
    assert again.digest == directory.digest
    assert again.size == directory.size


@given(directories)
def test_a_stores_own_bytes_decode_unchecked_to_the_same_directory(directory: Directory):
    """Directory.decode_stored (bytes a store validated at put and verified against their digest
    on read) finds the fields where the strict reader does: long names and targets (two-byte
    lengths), sizes up to 2**64 - 1, sizes and executable at their defaults."""
    stored = Directory.decode_stored(directory.encoded, directory.digest)
    assert stored == directory
    assert stored.nodes() == directory.nodes()
    assert stored.size == directory.size
    assert stored.encoded == directory.encoded and stored.digest == directory.digest
    assert all(type(node.digest) is B3Digest for node in (*stored.directories, *stored.files))


@given(directories, st.data())
def test_whatever_the_strict_reader_accepts_re_encodes_to_the_same_bytes(directory: Directory, data):
    """So no other bytes can pass for a directory with their digest."""
    encoded = bytearray(directory.encoded)
    for _ in range(data.draw(st.integers(1, 3))):
        if encoded:
            encoded[data.draw(st.integers(0, len(encoded) - 1))] = data.draw(st.integers(0, 255))
    try:
        decoded = Directory.decode_canonical(bytes(encoded))
    except (wire.NotCanonical, ValidationError):
        return
    assert Directory(decoded.directories, decoded.files, decoded.symlinks).encoded == bytes(encoded)


CLEAN = Directory.of([FileNode(b"a", EMPTY_DIGEST, 300, True), SymlinkNode(b"l", b"a")])
def _file_entry(body: bytes) -> bytes:
    return b"\x12" + bytes([len(body)]) + body


@pytest.mark.parametrize("encoded, why", [
    (CLEAN.encoded + b"\x7a\x00", "an unknown field"),
    (_file_entry(b"\x0a\x01a\x12\x20" + bytes(EMPTY_DIGEST) + b"\x18\x00"), "a size written at its default"),
    (_file_entry(b"\x12\x20" + bytes(EMPTY_DIGEST) + b"\x0a\x01a"), "fields out of order"),
    (_file_entry(b"\x0a\x01a\x12\x20" + bytes(EMPTY_DIGEST) + b"\x18\xac\x82\x00"), "a varint longer than needed"),
    (_file_entry(b"\x0a\x01a\x0a\x01b\x12\x20" + bytes(EMPTY_DIGEST)), "a repeated name"),
    (_file_entry(b"\x0a\x01a\x12\x20" + bytes(EMPTY_DIGEST) + b"\x20\x02"), "a bool written as 2"),
    (CLEAN.encoded[:-1], "truncated bytes"),
])
def test_non_canonical_bytes_are_refused_by_the_strict_reader(encoded: bytes, why: str):
    with pytest.raises((wire.NotCanonical, ValidationError)):
        Directory.decode_canonical(encoded)


def test_input_in_another_form_is_still_decoded_leniently_with_protobuf():
    with_unknown = CLEAN.encoded + b"\x7a\x01\x00"
    assert Directory.decode(with_unknown) == CLEAN
    assert Directory.decode(with_unknown).digest == CLEAN.digest
    node = FileNode(b"", B3Digest.of(b"x"), 5)
    assert decode_node(encode_node(node) + b"\x7a\x00") == node


def test_the_strict_reader_refuses_a_node_holding_two_kinds():
    twice = encode_node(FileNode(b"", EMPTY_DIGEST, 1)) + encode_node(SymlinkNode(b"", b"t"))
    with pytest.raises(wire.NotCanonical):
        decode_canonical_node(twice)
    assert decode_node(twice) == SymlinkNode(b"", b"t")  # protobuf: the last member of a oneof wins
