"""NAR reader: strict parsing of every malformed case, streaming file contents, hashing, round trips."""

from __future__ import annotations

import hashlib
import io
from pathlib import Path

import pytest
from hypothesis import given, settings, strategies as st

from castore.errors import ValidationError
from store import nixbase32
from store.errors import NarError
from store.nar.events import DIRECTORY_END, DIRECTORY_START, Entry, RegularFile, Symlink
from store.nar.reader import BLOCK_SIZE, SKIP_SIZE, HashingReader, read_nar
from store.nar.wire import (CLOSE, CONTENTS, DIRECTORY_OPEN, EMPTY, NAR_HEADER, OPEN_TYPE, symlink_node, token,
                            u64)
from store.nar.writer import write_nar
from tests.conftest import make_zoo
from tests.store.narbytes import Source, dir_node, file_node, nar
from tests.store.nixtool import interop, nix
from tests.store.trees import File, Link, events_tree, tree_events

SAMPLE = {
    b"bin": {b"hello": File(b"#!/bin/sh\necho hello\n", executable=True)},
    b"empty": {},
    b"empty-file": File(b""),
    b"link": Link(b"bin/hello"),
    b"share": {b"doc": {b"README": File(b"x" * 1000)}},
}


def encode(tree) -> bytes:
    return b"".join(write_nar(tree_events(tree)))


def decode(data: bytes, **kwargs):
    return events_tree(read_nar(io.BytesIO(data), **kwargs))


def test_reads_back_what_the_writer_wrote():
    data = encode(SAMPLE)
    assert decode(data) == SAMPLE
    assert b"".join(write_nar(read_nar(io.BytesIO(data)))) == data


def test_event_sequence():
    events = list(read_nar(io.BytesIO(encode({b"a": File(b"x", True), b"b": Link(b"a")}))))
    assert [type(e) for e in events] == [type(DIRECTORY_START), Entry, RegularFile, Entry, Symlink,
                                         type(DIRECTORY_END)]
    assert events[2].size == 1 and events[2].executable and events[4].target == b"a"


@interop
def test_round_trip_of_nix_store_dump_is_identical_and_hashes_match(tmp_path: Path):
    """Reads `nix-store --dump` output and re-encodes it identically; the hash equals `nix-hash --type sha256`."""
    zoo = make_zoo(tmp_path / "zoo", big=(2 << 20) + 3)
    dump = nix("nix-store", "--dump", str(zoo))
    source = HashingReader(io.BytesIO(dump))
    assert b"".join(write_nar(read_nar(source))) == dump
    assert source.size == len(dump)
    assert source.sha256 == hashlib.sha256(dump).digest()
    expected = nix("nix-hash", "--type", "sha256", "--base32", str(zoo)).decode().strip()
    assert nixbase32.encode(source.sha256) == expected


# --- malformed input -----------------------------------------------------------

def entry(name: bytes, node: bytes = file_node()) -> tuple[bytes, bytes]:
    return name, node


REGULAR = OPEN_TYPE + token(b"regular")
MALFORMED = {
    "wrong magic": (token(b"nix-archive-2") + file_node(), "magic"),
    "not a NAR at all": (b"this is plainly not a NAR archive", "magic"),
    "empty input": (b"", "truncated"),
    "trailing data": (nar(file_node()) + bytes(8), "trailing data"),
    "trailing data after a directory": (nar(dir_node()) + b"x", "trailing data"),
    "non-zero padding of contents": (
        nar(REGULAR + CONTENTS + u64(3) + b"abc" + b"\0\0\0\0\1" + CLOSE), "padding"),
    "non-zero padding of a tag": (NAR_HEADER + OPEN_TYPE + u64(7) + b"regular\1", "padding"),
    "non-zero padding of a name": (
        nar(DIRECTORY_OPEN + token(b"entry") + token(b"(") + token(b"name") + u64(1) + b"a\0\0\1\0\0\0\0"),
        "padding"),
    "non-zero padding of a target": (
        nar(OPEN_TYPE + token(b"symlink") + token(b"target") + u64(1) + b"a" + b"\1" * 7), "padding"),
    "unsorted names": (nar(dir_node(entry(b"b"), entry(b"a"))), "unsorted"),
    "duplicate names": (nar(dir_node(entry(b"a"), entry(b"a"))), "duplicate"),
    "duplicate names across kinds": (
        nar(dir_node(entry(b"a"), entry(b"a", symlink_node(b"t")))), "duplicate"),
    "empty name": (nar(dir_node(entry(b""))), "empty name"),
    "slash in a name": (nar(dir_node(entry(b"a/b"))), "'/'"),
    "NUL in a name": (nar(dir_node(entry(b"a\0b"))), "NUL"),
    "dot": (nar(dir_node(entry(b"."))), "invalid name"),
    "dot-dot": (nar(dir_node(entry(b".."))), "invalid name"),
    "name of 256 bytes": (nar(dir_node(entry(b"n" * 256))), "exceeds 255"),
    "absurd name length": (
        nar(DIRECTORY_OPEN + token(b"entry") + token(b"(") + token(b"name") + u64(2**62)), "exceeds 255"),
    "absurd tag length": (NAR_HEADER + OPEN_TYPE + u64(2**63), "node type length"),
    "target of 4096 bytes": (nar(symlink_node(b"t" * 4096)), "exceeds 4095"),
    "empty target": (nar(symlink_node(b"")), "1..4095"),
    "NUL in a target": (nar(symlink_node(b"a\0b")), "NUL"),
    "executable marker with a value": (nar(REGULAR + token(b"executable") + token(b"x")), "'' after"),
    "executable after contents": (
        nar(REGULAR + CONTENTS + u64(0) + token(b"executable") + EMPTY + CLOSE), "closing a node"),
    "unknown tag in a file": (nar(REGULAR + token(b"size") + u64(0)), "'executable' or 'contents'"),
    "unknown node type": (nar(OPEN_TYPE + token(b"fifo") + CLOSE), "unknown node type"),
    "node without '(' 'type'": (NAR_HEADER + token(b"(") + token(b"kind"), "'\\(' 'type'"),
    "entry without 'node'": (
        nar(DIRECTORY_OPEN + token(b"entry") + token(b"(") + token(b"name") + token(b"a") + token(b"nude")),
        "'node'"),
    "garbage in a directory": (nar(DIRECTORY_OPEN + token(b"entri")), "'entry' or '\\)'"),
    "entry not closed": (nar(DIRECTORY_OPEN + token(b"entry") + token(b"(") + token(b"name") + token(b"a")
                             + token(b"node") + file_node() + token(b"entry")), "closing an entry"),
    "contents longer than the input": (nar(REGULAR + CONTENTS + u64(2**60) + b"abc"), "truncated"),
    "root directory not closed": (nar(dir_node(entry(b"a")))[:-16], "truncated"),
}


@pytest.mark.parametrize("case", MALFORMED)
def test_malformed_nar_is_rejected(case):
    data, why = MALFORMED[case]
    with pytest.raises(NarError, match=why):
        decode(data)


def test_errors_are_validation_errors_with_an_offset():
    with pytest.raises(ValidationError, match=r"NAR at byte \d+"):
        decode(nar(dir_node(entry(b"b"), entry(b"a"))))
    assert issubclass(NarError, ValueError)


def test_every_truncation_is_rejected():
    data = encode(SAMPLE)
    for cut in range(len(data)):
        with pytest.raises(NarError):
            decode(data[:cut])


# --- streaming ------------------------------------------------------------------

def test_unread_contents_are_skipped_in_bounded_reads():
    source = Source(encode({b"big": File(bytes(3 * SKIP_SIZE + 5)), b"z": Link(b"big")}))
    assert [type(e) for e in read_nar(source)][-2:] == [Symlink, type(DIRECTORY_END)]
    assert source.largest <= SKIP_SIZE


def test_consumer_reads_in_pieces_from_a_bounded_substream():
    content = bytes(range(256)) * 4096
    source = Source(encode({b"f": File(content), b"g": File(b"after")}))
    got = {}
    for event in read_nar(source):
        if isinstance(event, RegularFile):
            pieces = iter(lambda: event.contents.read(BLOCK_SIZE), b"")
            got[event.size] = b"".join(pieces)
            assert event.contents.read(10) == b"" and event.contents.remaining == 0
    assert got == {len(content): content, 5: b"after"}
    assert source.largest <= BLOCK_SIZE


def test_unread_contents_are_skipped_and_the_substream_expires():
    events = read_nar(io.BytesIO(encode({b"a": File(b"0123456789"), b"b": File(b"tail")})))
    assert next(events) == DIRECTORY_START and next(events) == Entry(b"a")
    first = next(events)
    assert first.contents.read(3) == b"012"
    assert next(events) == Entry(b"b")
    with pytest.raises(ValueError, match="moved on"):
        first.contents.read()
    assert next(events).contents.read() == b"tail"
    assert list(events) == [DIRECTORY_END]


def test_truncation_inside_contents_reaches_the_consumer():
    event = next(read_nar(io.BytesIO(encode(File(b"x" * 100))[:-60])))
    with pytest.raises(NarError, match="truncated"):
        event.contents.read()


def test_hashing_reader_counts_and_hashes_what_passes():
    data = encode(SAMPLE)
    source = HashingReader(io.BytesIO(data))
    assert events_tree(read_nar(source)) == SAMPLE
    assert (source.size, source.sha256) == (len(data), hashlib.sha256(data).digest())


# --- properties -------------------------------------------------------------------

names = st.binary(min_size=1, max_size=12).filter(
    lambda n: b"/" not in n and b"\0" not in n and n not in (b".", b".."))
leaves = st.one_of(
    st.builds(File, st.binary(max_size=300), st.booleans()),
    st.builds(Link, st.binary(min_size=1, max_size=40).filter(lambda t: b"\0" not in t)),
)
trees = st.recursive(leaves, lambda children: st.dictionaries(names, children, max_size=5), max_leaves=25)


@settings(max_examples=150, deadline=None)
@given(tree=trees, block_size=st.sampled_from([1, 3, 8, 64, BLOCK_SIZE]), step=st.sampled_from([None, 1, 5, 4096]))
def test_random_trees_round_trip(tree, block_size, step):
    """write -> read (any block size, short reads) -> write gives the same bytes and the same tree."""
    data = encode(tree)
    assert events_tree(read_nar(Source(data, step), block_size=block_size)) == tree
    assert b"".join(write_nar(read_nar(Source(data, step), block_size=block_size))) == data


def test_nesting_deeper_than_the_recursion_limit_round_trips():
    depth = 5000
    events = [DIRECTORY_START, Entry(b"d")] * depth + [DIRECTORY_START] + [DIRECTORY_END] * (depth + 1)
    data = b"".join(write_nar(events))
    assert list(read_nar(io.BytesIO(data))) == events
