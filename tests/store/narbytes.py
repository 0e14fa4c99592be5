"""Hand-built NAR bytes for tests, including malformed ones the writer would refuse to produce."""

from __future__ import annotations

import io

from store.nar.wire import CLOSE, DIRECTORY_OPEN, NAR_HEADER, entry_open, regular_header, regular_trailer


def file_node(data: bytes = b"x", executable: bool = False) -> bytes:
    return regular_header(len(data), executable) + data + regular_trailer(len(data))


def dir_node(*entries: tuple[bytes, bytes]) -> bytes:
    """A directory node from (name, node bytes) pairs, in the order given, names unchecked."""
    return DIRECTORY_OPEN + b"".join(entry_open(name) + node + CLOSE for name, node in entries) + CLOSE


def nar(node: bytes) -> bytes:
    return NAR_HEADER + node


class Source:
    """A binary source that records the largest read asked of it and may return short reads."""

    def __init__(self, data: bytes, step: int | None = None) -> None:
        self._f = io.BytesIO(data)
        self._step = step
        self.largest = 0

    def read(self, size: int = -1, /) -> bytes:
        self.largest = max(self.largest, size)
        if self._step is not None and (size < 0 or size > self._step):
            size = self._step
        return self._f.read(size)
