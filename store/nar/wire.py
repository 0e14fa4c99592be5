"""The byte pieces of the NAR grammar: u64 little-endian length, bytes, zero padding to 8.

Shared by the writer (which emits them) and the reader (which expects them).
"""

from __future__ import annotations

MAGIC = b"nix-archive-1"
MAX_TAG = 16  # longest grammar word is "nix-archive-1"; anything longer is not a tag


def u64(n: int) -> bytes:
    return n.to_bytes(8, "little")


def padding(size: int) -> bytes:
    """The zero bytes that follow `size` bytes of a token."""
    return _PADDING[size & 7]


_PADDING = [bytes(-n % 8) for n in range(8)]


def token(data: bytes) -> bytes:
    return u64(len(data)) + data + padding(len(data))


NAR_HEADER = token(MAGIC)
OPEN_TYPE = token(b"(") + token(b"type")
CLOSE = token(b")")  # ends a node and an entry alike
DIRECTORY_OPEN = OPEN_TYPE + token(b"directory")
EMPTY = token(b"")
EXECUTABLE_MARK = token(b"executable") + EMPTY
CONTENTS = token(b"contents")
ENTRY = token(b"entry")
OPEN_NAME = token(b"(") + token(b"name")
NODE = token(b"node")
TARGET = token(b"target")
SYMLINK_TARGET = OPEN_TYPE + token(b"symlink") + TARGET
_REGULAR = OPEN_TYPE + token(b"regular")


def regular_header(size: int, executable: bool) -> bytes:
    """Everything of a file node before its contents."""
    return _REGULAR + (EXECUTABLE_MARK if executable else b"") + CONTENTS + u64(size)


def regular_trailer(size: int) -> bytes:
    """Everything of a file node after its `size` bytes of contents."""
    return padding(size) + CLOSE


def symlink_node(target: bytes) -> bytes:
    return SYMLINK_TARGET + token(target) + CLOSE


def entry_open(name: bytes) -> bytes:
    """Starts a directory entry; the child node follows, then CLOSE."""
    return _ENTRY_NAME + token(name) + NODE


_ENTRY_NAME = ENTRY + OPEN_NAME
