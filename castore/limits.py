"""The shape limits every way into castore enforces: entries per directory and tree depth.

C++ Nix has neither, so both are generous; they exist so that a tiny upload (92 KB of xz
holding a directory of a million entries, or 304 bytes nesting 3000 levels) cannot make a
server hold gigabytes or recurse without end. Both are set for a process by its
environment; a tree past either is refused with a ValidationError saying which.
"""

from __future__ import annotations

import os

from castore.errors import ValidationError

MAX_ENTRIES_ENV = "CAIRN_MAX_DIRECTORY_ENTRIES"
MAX_DEPTH_ENV = "CAIRN_MAX_DIRECTORY_DEPTH"


def max_entries() -> int:
    """Entries (of all kinds) one directory may hold (default 1,000,000)."""
    return _setting(MAX_ENTRIES_ENV, 1_000_000)


def max_depth() -> int:
    """Directories a path may nest below its root (default 10,000: PATH_MAX, 4096 bytes, keeps
    Nix from unpacking more than 2048 levels, so this leaves room; every walk is iterative, and
    the limit bounds what a few bytes of xz can make them keep)."""
    return _setting(MAX_DEPTH_ENV, 10_000)


def check_entries(count: int, limit: int | None = None) -> None:
    """ValidationError when a directory of `count` entries is past the limit."""
    limit = max_entries() if limit is None else limit
    if count > limit:
        raise ValidationError(f"a directory holds more than {limit} entries (the limit, set by ${MAX_ENTRIES_ENV})")


def check_depth(depth: int, limit: int | None = None) -> None:
    """ValidationError when directories nest `depth` levels below a root, past the limit."""
    limit = max_depth() if limit is None else limit
    if depth > limit:
        raise ValidationError(f"directories nest more than {limit} levels deep (the limit, set by ${MAX_DEPTH_ENV})")


def _setting(name: str, default: int) -> int:
    """Read each time, so a process's limits are what its environment says (tests set it)."""
    text = os.environ.get(name)
    if text is None:
        return default
    if not text.isascii() or not text.isdigit() or int(text) <= 0:
        raise ValidationError(f"${name} must be a positive integer, got {text[:40]!r}")
    return int(text)
