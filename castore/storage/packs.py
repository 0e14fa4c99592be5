"""The pack store: immutable packs of compressed frames, named by the BLAKE3 of their bytes.

A pack is written whole, once (`put`), and read by byte ranges (a frame each), several at
once so a remote backend can answer them in one request. Content naming makes a repeated put
harmless and a pack verifiable against its name; which packs are in use is the metadata
store's business, not this one's.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Iterator, Sequence

import blake3

from castore.errors import ValidationError

_NAME_LENGTH = 64
_HEX_DIGITS = frozenset("0123456789abcdef")


def pack_name(data: bytes | memoryview | bytearray) -> str:
    """The name of a pack holding `data`: its lowercase hex BLAKE3."""
    return blake3.blake3(data).hexdigest()


def check_name(name: str) -> str:
    """`name` if it can name a pack (64 lowercase hex digits), else ValidationError: a name
    becomes a file or object key, so nothing else may reach a backend."""
    if not isinstance(name, str) or len(name) != _NAME_LENGTH or not _HEX_DIGITS.issuperset(name):
        raise ValidationError(f"not a pack name (64 lowercase hex digits): {name!r}")
    return name


class PackStore(ABC):
    pack_bytes = 24 * 1024 * 1024
    """How large a writer lets a pack grow: large enough that a per-request cost does not matter,
    small enough for a writer's memory, which holds up to two packs (one being put while the next
    fills) and a spare. Importing a 300 MiB blob peaks at 116-130 MB with 24 MiB packs (71-84 MB
    when packs were files appended in place). A store that bills per request asks for more."""

    @abstractmethod
    def put(self, name: str, data: bytes | memoryview) -> None:
        """Store a pack, durable on return. Putting a name that exists changes nothing (same
        name, same bytes)."""

    def keep(self, name: str, data: bytes | memoryview, ranges: Sequence[tuple[int, int]]) -> None:
        """A pack this process just put, and the ranges of it readers ask for (its frames): a
        store with a cache of reads keeps them, so that reading them back (a writer's delta
        bases) costs no request. Others ignore it."""

    @abstractmethod
    def read(self, name: str, ranges: Sequence[tuple[int, int]]) -> list[bytes]:
        """The bytes at each (offset, length) of a pack. CorruptionError, naming the pack, when it
        is missing or shorter than a range."""

    @abstractmethod
    def list(self) -> Iterator[tuple[str, int]]:
        """Every pack as (name, size in bytes), in no particular order."""

    @abstractmethod
    def delete(self, name: str) -> None:
        """Remove a pack (a missing one is no error)."""

    @abstractmethod
    def close(self) -> None:
        """Release what the store holds open."""
