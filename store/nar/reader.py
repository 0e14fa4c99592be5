"""Bytes -> NAR events, strict and streaming: a regular file's contents are a bounded sub-stream.

Nothing is buffered beyond one block, so a multi-GiB file can flow from the NAR
into a blob writer. Directories wider or deeper than castore.limits allow are refused as
they come, before a consumer collects their entries. Everything non-canonical is rejected with a NarError that
names the byte offset (SPEC 5, NAR).
"""

from __future__ import annotations

import hashlib
from typing import Callable, Generator, Iterator, NamedTuple, TypeVar

from castore import limits
from castore.errors import ValidationError
from castore.nodes import MAX_NAME, MAX_TARGET
from store.errors import NarError
from store.nar import SupportsRead
from store.nar.events import (DIRECTORY_END, DIRECTORY_START, Entry, NarEvent, RegularFile, Symlink,
                              check_entry_order)
from store.nar.wire import (CLOSE, CONTENTS, EMPTY, ENTRY, MAX_TAG, NAR_HEADER, NODE, OPEN_NAME,
                            OPEN_TYPE, TARGET)

BLOCK_SIZE = 1 << 16  # reads from the source are at least this large, except direct content reads
SKIP_SIZE = 1 << 20  # unread file contents are skipped in pieces of this size
T = TypeVar("T")


class HashingReader:
    """Counts and sha256-hashes every byte read through it: wrap a NAR source to learn its NarHash/NarSize."""

    def __init__(self, raw: SupportsRead) -> None:
        self._raw = raw
        self._sha256 = hashlib.sha256()
        self.size = 0

    def read(self, size: int = -1, /) -> bytes:
        data = self._raw.read(size)
        self._sha256.update(data)
        self.size += len(data)
        return data

    @property
    def sha256(self) -> bytes:
        return self._sha256.digest()


def read_nar(source: SupportsRead, *, block_size: int = BLOCK_SIZE) -> Iterator[NarEvent]:
    """The events of the NAR that `source` holds, entirely: trailing bytes are an error.

    Each RegularFile's `contents` reads from the NAR itself and is valid until the
    next event is requested; whatever the consumer left unread is skipped then.
    Iterate to the end: the last checks (closing tokens, no trailing data) run there.
    """
    inp = _Input(source, block_size)
    inp.expect(NAR_HEADER, "the NAR magic 'nix-archive-1'")
    last_names: list[bytes | None] = []  # per open directory, the last entry name seen
    counts: list[int] = []  # per open directory, its entries so far
    shape = _Shape(limits.max_entries(), limits.max_depth())
    while True:
        node_done = yield from _node(inp, last_names, counts, shape)
        while True:  # close finished entries and directories until the next node starts
            if node_done:
                if not last_names:
                    inp.expect_eof()
                    return
                inp.expect(CLOSE, "')' closing an entry")
            tag = inp.exact(len(CLOSE))  # 'entry' and ')' tokens have the same length
            if tag == CLOSE:
                last_names.pop()
                counts.pop()
                yield DIRECTORY_END
                node_done = True
            elif tag == ENTRY:
                counts[-1] += 1
                inp.validated(limits.check_entries, counts[-1], shape.entries)
                yield _entry(inp, last_names)
                break
            else:
                raise inp.error("expected 'entry' or ')' in a directory")


class _Shape(NamedTuple):
    """The limits (castore.limits) read once per NAR."""

    entries: int
    depth: int


def _node(inp: _Input, last_names: list[bytes | None], counts: list[int],
          shape: _Shape) -> Generator[NarEvent, None, bool]:
    """Parse one node's start; True when it is complete, False when a directory was opened."""
    inp.expect(OPEN_TYPE, "'(' 'type' opening a node")
    kind = inp.token(MAX_TAG, "node type")
    if kind == b"directory":
        inp.validated(limits.check_depth, len(last_names), shape.depth)
        last_names.append(None)
        counts.append(0)
        yield DIRECTORY_START
        return False
    if kind == b"regular":
        yield from _regular(inp)
    elif kind == b"symlink":
        inp.expect(TARGET, "'target' in a symlink")
        target = inp.token(MAX_TARGET, "symlink target")
        yield inp.validated(Symlink, target)
    else:
        raise inp.error(f"unknown node type {kind!r}")
    inp.expect(CLOSE, "')' closing a node")
    return True


def _regular(inp: _Input) -> Iterator[NarEvent]:
    tag = inp.token(MAX_TAG, "tag in a regular file")
    executable = tag == b"executable"
    if executable:
        inp.expect(EMPTY, "'' after 'executable'")
        inp.expect(CONTENTS, "'contents' in a regular file")
    elif tag != b"contents":
        raise inp.error(f"expected 'executable' or 'contents', got {tag!r}")
    size = inp.u64()
    contents = FileContents(inp, size)
    yield RegularFile(size, executable, contents)
    contents.finish()
    inp.padding(size)


def _entry(inp: _Input, last_names: list[bytes | None]) -> Entry:
    inp.expect(OPEN_NAME, "'(' 'name' in an entry")
    name = inp.token(MAX_NAME, "entry name")
    entry = inp.validated(Entry, name)
    inp.validated(check_entry_order, last_names[-1], name)
    last_names[-1] = name
    inp.expect(NODE, "'node' in an entry")
    return entry


class FileContents:
    """A regular file's bytes inside a NAR, read straight from the NAR stream.

    read(n) returns exactly min(n, remaining) bytes; b"" means the file is done.
    """

    def __init__(self, inp: _Input, size: int) -> None:
        self.size = size
        self.remaining = size
        self._inp: _Input | None = inp

    def read(self, size: int | None = -1, /) -> bytes:
        if self._inp is None:
            raise ValueError("file contents read after the NAR reader moved on")
        n = self.remaining if size is None or size < 0 else min(size, self.remaining)
        if not n:
            return b""
        data = self._inp.exact(n)
        self.remaining -= n
        return data

    def finish(self) -> None:
        """Skip what the consumer left unread and detach from the stream."""
        while self.remaining:
            self.read(SKIP_SIZE)
        self._inp = None


class _Input:
    """Block-buffered reads from the source; keeps the stream offset for error messages."""

    def __init__(self, source: SupportsRead, block_size: int) -> None:
        self._src = source
        self._block = block_size
        self._buf = b""
        self._pos = 0
        self._offset = 0  # stream offset of _buf[0]

    def error(self, message: str) -> NarError:
        return NarError(f"NAR at byte {self._offset + self._pos}: {message}")

    def exact(self, n: int) -> bytes:
        """The next n bytes; large reads bypass the buffer so contents are never copied twice."""
        pos, end = self._pos, self._pos + n
        if end <= len(self._buf):
            self._pos = end
            return self._buf[pos:end]
        start = self._offset + pos
        parts = [self._buf[pos:]] if pos < len(self._buf) else []
        have = len(self._buf) - pos
        direct = n - have >= self._block
        while have < n:
            chunk = self._src.read(n - have if direct else self._block)
            if not chunk:
                self._buf, self._pos, self._offset = b"", 0, start + have
                raise self.error(f"truncated: {n - have} more bytes expected")
            parts.append(chunk)
            have += len(chunk)
        data = parts[0] if len(parts) == 1 else b"".join(parts)
        if direct:
            self._buf, self._pos, self._offset = b"", 0, start + n
            return data
        self._buf, self._pos, self._offset = data, n, start
        return data[:n]

    def u64(self) -> int:
        return int.from_bytes(self.exact(8), "little")

    def padding(self, size: int) -> None:
        pad = -size % 8
        if pad and self.exact(pad) != bytes(pad):
            raise self.error("non-zero padding")

    def token(self, max_size: int, what: str) -> bytes:
        size = self.u64()
        if size > max_size:
            raise self.error(f"{what} length {size} exceeds {max_size}")
        data = self.exact(size)
        self.padding(size)
        return data

    def expect(self, expected: bytes, what: str) -> None:
        if self.exact(len(expected)) != expected:
            raise self.error(f"expected {what}")

    def validated(self, check: Callable[..., T], *args: object) -> T:
        """Run a constructor or check, turning its ValidationError into a NarError at this offset."""
        try:
            return check(*args)
        except ValidationError as e:
            raise self.error(str(e)) from e

    def expect_eof(self) -> None:
        if self._pos < len(self._buf) or self._src.read(1):
            raise self.error("trailing data after the root node")
