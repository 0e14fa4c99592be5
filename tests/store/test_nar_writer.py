"""NAR writer: the vectors, byte-identity with `nix-store --dump`, grammar checks and bounded streaming."""

from __future__ import annotations

import hashlib
import io
import os
from pathlib import Path

import pytest

from castore.errors import ValidationError
from store.errors import NarError
from store.nar.events import DIRECTORY_END, DIRECTORY_START, Entry, RegularFile, Symlink
from store.nar.wire import CLOSE, DIRECTORY_OPEN, NAR_HEADER, entry_open
from store.nar.writer import FLUSH_SIZE, READ_SIZE, write_nar
from tests.conftest import make_zoo
from tests.store.narbytes import Source
from tests.store.nixtool import interop, nix
from store.nar.fs import fs_events
from tests.store.trees import File, Link, tree_events


def nar_of(events) -> bytes:
    return b"".join(write_nar(events))


def vector(vectors, what: str) -> dict:
    (v,) = [v for v in vectors["nars"] if v["what"] == what]
    return v


@pytest.mark.parametrize("what, tree", [
    ("symlink -> /nix/store/somewhereelse", Link(b"/nix/store/somewhereelse")),
    ("regular file 'Hello World!'", File(b"Hello World!")),
    ("executable file 'Hello World!'", File(b"Hello World!", executable=True)),
    ("empty regular file", File(b"")),
    ("empty directory", {}),
])
def test_vectors(vectors, what, tree):
    data = nar_of(tree_events(tree))
    v = vector(vectors, what)
    assert len(data) == v["size"]
    assert hashlib.sha256(data).hexdigest() == v["sha256"]
    assert data.startswith(bytes.fromhex(vector(vectors, "first 24 bytes of every NAR")["prefix_hex"]))


@pytest.fixture
def zoo(tmp_path: Path) -> Path:
    """The shared zoo (every entry kind, odd and non-UTF-8 names) with a 3 MiB file of odd size."""
    root = make_zoo(tmp_path / "zoo", big=(3 << 20) + 5)
    (root / "nested" / "empty-sub").mkdir()
    (root / "nested" / "exe-empty").touch(mode=0o755)
    (root / ("n" * 255)).write_bytes(b"longest name")
    (root / "B-upper-sorts-first").write_bytes(b"B")
    return root


@interop
def test_byte_identical_to_nix_store_dump(zoo: Path, tmp_path: Path):
    """Compared with `nix-store --dump` of a directory tree and of each kind of root node."""
    os.symlink("../elsewhere", tmp_path / "root-link")
    for path in (zoo, zoo / "big.bin", zoo / "script.sh", zoo / "empty-file", zoo / "empty-dir",
                 tmp_path / "root-link"):
        assert nar_of(fs_events(path)) == nix("nix-store", "--dump", str(path)), path


def test_nesting_deeper_than_the_recursion_limit():
    depth = 5000
    events = [DIRECTORY_START, Entry(b"d")] * depth + [DIRECTORY_START] + [DIRECTORY_END] * (depth + 1)
    expected = (NAR_HEADER + (DIRECTORY_OPEN + entry_open(b"d")) * depth + DIRECTORY_OPEN + CLOSE
                + (CLOSE + CLOSE) * depth)
    assert nar_of(events) == expected


def file_event(data: bytes = b"x", size: int | None = None) -> RegularFile:
    return RegularFile(len(data) if size is None else size, False, io.BytesIO(data))


@pytest.mark.parametrize("events, why", [
    ([], "ended before the root"),
    ([DIRECTORY_START], "ended before the root"),
    ([DIRECTORY_START, Entry(b"a")], "ended before the root"),
    ([file_event(), file_event()], "after the root node"),
    ([DIRECTORY_START, DIRECTORY_END, DIRECTORY_END], "after the root node"),
    ([Entry(b"a")], "outside a directory"),
    ([DIRECTORY_START, Entry(b"a"), Entry(b"b")], "outside a directory"),
    ([DIRECTORY_END], "DirectoryEnd"),
    ([DIRECTORY_START, Entry(b"a"), DIRECTORY_END], "DirectoryEnd"),
    ([DIRECTORY_START, file_event()], "without an Entry"),
    ([DIRECTORY_START, Entry(b"b"), file_event(), Entry(b"a")], "unsorted"),
    ([DIRECTORY_START, Entry(b"a"), file_event(), Entry(b"a")], "duplicate"),
    ([file_event(b"abc", size=4)], "ended 1 bytes before"),
    ([file_event(b"abc", size=2)], "longer than"),
    (["not an event"], "not a NAR event"),
])
def test_events_that_break_the_grammar_are_refused(events, why):
    with pytest.raises((NarError, TypeError), match=why):
        nar_of(events)


@pytest.mark.parametrize("make", [
    lambda: Entry(b""), lambda: Entry(b"a/b"), lambda: Entry(b"a\0"), lambda: Entry(b"."),
    lambda: Entry(b".."), lambda: Entry(b"x" * 256), lambda: Symlink(b""), lambda: Symlink(b"a\0"),
    lambda: Symlink(b"x" * 4096), lambda: RegularFile(-1, False, io.BytesIO()),
])
def test_invalid_events_cannot_be_built(make):
    with pytest.raises(ValidationError):
        make()


def test_file_contents_stream_in_bounded_pieces():
    size = 3 * READ_SIZE + 17
    source = Source(bytes(size), step=100_000)
    pieces = list(write_nar([RegularFile(size, False, source)]))
    assert source.largest <= READ_SIZE
    assert max(map(len, pieces)) <= max(READ_SIZE, 2 * FLUSH_SIZE)
    assert sum(map(len, pieces)) == len(nar_of([file_event(bytes(size))]))


def test_small_pieces_are_coalesced():
    tree = {b"%05d" % i: File(b"x" * (i % 50)) for i in range(2000)}
    pieces = list(write_nar(tree_events(tree)))
    assert all(len(p) >= FLUSH_SIZE for p in pieces[:-1])
