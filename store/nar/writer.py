"""NAR events -> bytes, streaming: file contents flow through in bounded pieces, checked against their size."""

from __future__ import annotations

from typing import Iterable, Iterator

from store.errors import NarError
from store.nar.events import (DirectoryEnd, DirectoryStart, Entry, NarEvent, RegularFile, Symlink,
                              check_entry_order)
from store.nar.wire import (CLOSE, DIRECTORY_OPEN, NAR_HEADER, entry_open, regular_header,
                            regular_trailer, symlink_node)

READ_SIZE = 1 << 20  # how much file content is asked for at a time
FLUSH_SIZE = 1 << 16  # small pieces are gathered up to this before they are yielded


def write_nar(events: Iterable[NarEvent]) -> Iterator[bytes]:
    """The NAR of `events`, which must describe exactly one root node.

    Grammar pieces and small files are coalesced into pieces of about FLUSH_SIZE, so
    a consumer pays per-piece costs (hashing, socket writes) rarely; large file
    contents pass through as read. Raises NarError when the events break the grammar,
    names do not strictly ascend, or contents are shorter or longer than declared.
    """
    pending = bytearray()
    for piece in _pieces(events):
        if len(piece) < FLUSH_SIZE:
            pending += piece
            if len(pending) < FLUSH_SIZE:
                continue
            piece = bytes(pending)
            pending.clear()
        elif pending:
            yield bytes(pending)
            pending.clear()
        yield piece
    if pending:
        yield bytes(pending)


def _pieces(events: Iterable[NarEvent]) -> Iterator[bytes]:
    """Checks the event grammar with an explicit stack (no recursion limit on depth)."""
    yield NAR_HEADER
    last_names: list[bytes | None] = []  # per open directory, the last entry name seen
    expect_node = True  # at the root and after each Entry
    done = False
    for event in events:
        if done:
            raise NarError(f"{type(event).__name__} after the root node was complete")
        if isinstance(event, Entry):
            if expect_node or not last_names:
                raise NarError(f"entry {event.name!r} outside a directory")
            check_entry_order(last_names[-1], event.name)
            last_names[-1] = event.name
            expect_node = True
            yield entry_open(event.name)
            continue
        if isinstance(event, DirectoryEnd):
            if expect_node or not last_names:
                raise NarError("DirectoryEnd where a node was expected or no directory is open")
            last_names.pop()
            yield CLOSE
        elif not expect_node:
            raise NarError(f"{type(event).__name__} without an Entry naming it")
        elif isinstance(event, DirectoryStart):
            last_names.append(None)
            expect_node = False
            yield DIRECTORY_OPEN
            continue
        elif isinstance(event, Symlink):
            yield symlink_node(event.target)
        elif isinstance(event, RegularFile):
            yield from _file_pieces(event)
        else:
            raise TypeError(f"not a NAR event: {event!r}")
        # a node is complete: close the entry holding it, or finish the NAR
        if last_names:
            yield CLOSE
            expect_node = False
        else:
            done = True
    if not done:
        raise NarError("events ended before the root node was complete")


def _file_pieces(event: RegularFile) -> Iterator[bytes]:
    yield regular_header(event.size, event.executable)
    remaining = event.size
    while remaining:
        piece = event.contents.read(min(remaining, READ_SIZE))
        if not piece:
            raise NarError(f"file contents ended {remaining} bytes before the declared {event.size}")
        if len(piece) > remaining:
            raise NarError(f"file contents longer than the declared {event.size} bytes")
        remaining -= len(piece)
        yield piece
    if event.contents.read(1):
        raise NarError(f"file contents longer than the declared {event.size} bytes")
    yield regular_trailer(event.size)


class PiecesReader:
    """A readable stream over byte pieces, so a NAR being written can be read as it is made."""

    def __init__(self, pieces: Iterable[bytes]) -> None:
        self._pieces = iter(pieces)
        self._current = memoryview(b"")

    def read(self, size: int = -1) -> bytes:
        if size < 0:
            return bytes(self._current) + b"".join(self._pieces)
        while not self._current:
            piece = next(self._pieces, None)
            if piece is None:
                return b""
            self._current = memoryview(piece)
        out, self._current = self._current[:size], self._current[size:]
        return bytes(out)
