"""The NAR event vocabulary shared by the streaming reader and writer.

A NAR is a stream of events in this grammar (SPEC 5):

    node = RegularFile | Symlink | DirectoryStart { Entry node } DirectoryEnd
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Union

from castore.errors import ValidationError
from castore.nodes import MAX_TARGET, validate_name
from store.errors import NarError
from store.nar import SupportsRead

U64_MAX = 2**64 - 1


@dataclass(frozen=True, slots=True)
class RegularFile:
    """A file node; `contents` yields exactly `size` bytes through read(n)."""

    size: int
    executable: bool
    contents: SupportsRead

    def __post_init__(self) -> None:
        if not 0 <= self.size <= U64_MAX:
            raise ValidationError(f"file size {self.size} out of range")


@dataclass(frozen=True, slots=True)
class Symlink:
    target: bytes

    def __post_init__(self) -> None:
        if not 1 <= len(self.target) <= MAX_TARGET:
            raise ValidationError(f"symlink target must be 1..{MAX_TARGET} bytes, got {len(self.target)}")
        if b"\0" in self.target:
            raise ValidationError(f"symlink target contains NUL: {self.target[:80]!r}")


@dataclass(frozen=True, slots=True)
class DirectoryStart:
    """Opens a directory; Entry/node pairs follow, then DirectoryEnd."""


@dataclass(frozen=True, slots=True)
class Entry:
    """Names the node that follows; names within a directory strictly ascend by bytes."""

    name: bytes

    def __post_init__(self) -> None:
        validate_name(self.name)


@dataclass(frozen=True, slots=True)
class DirectoryEnd:
    """Closes the innermost open directory."""


NarEvent = Union[RegularFile, Symlink, DirectoryStart, Entry, DirectoryEnd]
DIRECTORY_START = DirectoryStart()
DIRECTORY_END = DirectoryEnd()


def check_entry_order(last: bytes | None, name: bytes) -> None:
    """Entry names strictly ascend by bytes within a directory; `last` is None for the first."""
    if last is not None and name <= last:
        what = "duplicate" if name == last else "unsorted"
        raise NarError(f"{what} entry name {name!r} after {last!r}")
