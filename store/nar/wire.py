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
    return _REGULAR_HEADERS[executable] + size.to_bytes(8, "little")


def regular_trailer(size: int) -> bytes:
    """Everything of a file node after its `size` bytes of contents."""
    return _TRAILERS[size & 7]


def symlink_node(target: bytes) -> bytes:
    return SYMLINK_TARGET + token(target) + CLOSE


def entry_open(name: bytes) -> bytes:
    """Starts a directory entry; the child node follows, then CLOSE."""
    size = len(name)
    return (_ENTRY_NAMES[size] if size <= MAX_NAME else _ENTRY_NAME + u64(size)) + name + _NAME_ENDS[size & 7]


_REGULAR_HEADERS = (_REGULAR + CONTENTS, _REGULAR + EXECUTABLE_MARK + CONTENTS)
"""A file node up to its size, by whether it is executable: made once, a NAR has many."""
_TRAILERS = [padding(size) + CLOSE for size in range(8)]
_ENTRY_NAME = ENTRY + OPEN_NAME
MAX_NAME = 255
"""The longest name castore allows: each shorter length has its start of an entry made once."""
_ENTRY_NAMES = [_ENTRY_NAME + u64(size) for size in range(MAX_NAME + 1)]
_NAME_ENDS = [padding(size) + NODE for size in range(8)]
