"""What rendering a whole NAR needs, without the tree: its size, the framing before each file's
contents (and after the last) and each file's digest and size.

Laying out Django-5.0's NAR walks 2,448 directories and 6,100 nodes (about 20 ms), and making its
framing again while rendering costs 4 ms more; a skeleton is those results in one record, which a
store that can keep one per root (the embedded store's path infos: see store/pathinfo/local.py)
reads back in about a millisecond. A root's skeleton never changes: it follows from the root's
digest alone, whatever store holds it. The encoding is zstd-compressed with its checksum, so a
damaged record is noticed and made again, never rendered.
"""

from __future__ import annotations

import itertools
import struct
import sys
from array import array
from typing import Sequence

from castore.digest import B3Digest
from store.nar.layout import NarLayout
from store.nar.wire import OPEN_NAME

VERSION = 1
_digest = bytes.__new__  # a B3Digest of 32 bytes read back, not checked again
_HEADER = struct.Struct("<BQI")  # version, NAR size, files
MAX_FILES = 1 << 16
"""Roots with more files are laid out for each render: their record would hold megabytes of
framing, read whole each time, for a render that is long anyway."""


class NarSkeleton:
    """A whole NAR's framing and files, as render_layout reads them. Never changed once built."""

    __slots__ = ("size", "framing", "digests", "sizes")

    def __init__(self, size: int, framing: Sequence[bytes], digests: Sequence[B3Digest], sizes: array) -> None:
        self.size = size
        """NarSize: every byte of the NAR."""
        self.framing = framing
        """The NAR bytes before each file's contents (after the previous file's), then those after the last."""
        self.digests = digests
        """Each file's blob digest, in NAR order."""
        self.sizes = sizes
        """Each file's size, in NAR order."""

    @classmethod
    def of(cls, layout: NarLayout) -> NarSkeleton:
        return cls(layout.size, list(layout.framing), layout.digests, array("Q", layout.sizes))

    def file_name(self, index: int) -> bytes:
        """The name of file `index` (for messages), read back from its framing: the last start of
        a name in it is its entry's (names and targets hold no NUL, and that start does)."""
        framing = self.framing[index]
        start = framing.rfind(OPEN_NAME)
        if start < 0:
            return b""  # a file root: no entry
        start += len(OPEN_NAME)
        length = int.from_bytes(framing[start:start + 8], "little")
        return framing[start + 8:start + 8 + length]

    def encode(self) -> bytes:
        import zstandard

        lengths = array("I", map(len, self.framing))
        sizes = array("Q", self.sizes)
        if sys.byteorder == "big":
            lengths.byteswap()
            sizes.byteswap()
        payload = b"".join((_HEADER.pack(VERSION, self.size, len(self.digests)), lengths.tobytes(), sizes.tobytes(),
                            *self.digests, *self.framing))
        return zstandard.ZstdCompressor(level=3, write_checksum=True).compress(payload)

    @classmethod
    def decode(cls, data: bytes) -> NarSkeleton | None:
        """The skeleton `data` encodes; None when it is damaged or of another version (make it again)."""
        import zstandard

        try:
            raw = zstandard.ZstdDecompressor().decompress(data)
        except zstandard.ZstdError:
            return None
        if len(raw) < _HEADER.size or raw[0] != VERSION:
            return None
        _, size, files = _HEADER.unpack_from(raw)
        at = _HEADER.size
        lengths, sizes = array("I"), array("Q")
        try:
            lengths.frombytes(raw[at:at + 4 * (files + 1)])
            at += 4 * (files + 1)
            sizes.frombytes(raw[at:at + 8 * files])
        except ValueError:
            return None
        at += 8 * files
        if sys.byteorder == "big":
            lengths.byteswap()
            sizes.byteswap()
        if len(lengths) != files + 1 or len(sizes) != files or \
                len(raw) != at + 32 * files + sum(lengths) or size != sum(lengths) + sum(sizes):
            return None
        view = memoryview(raw)
        digests = [_digest(B3Digest, view[p:p + 32]) for p in range(at, at + 32 * files, 32)]
        at += 32 * files
        ends = list(itertools.accumulate(lengths, initial=at))
        framing = [raw[start:end] for start, end in zip(ends, ends[1:])]
        return cls(size, framing, digests, sizes)
