"""What a mount is asked for beyond its root, importable without pyfuse3 or trio."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class MountOptions:
    allow_other: bool = False
    xattr: bool = False
