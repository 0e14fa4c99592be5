"""Filesystem -> NAR events: what `nix-store --dump PATH` describes, read lazily.

Files stay open only while their contents are read; a file that changes size between
the walk and the read fails the NAR writer's size check instead of producing a wrong NAR.
"""

from __future__ import annotations

import os
import stat
from typing import Iterator

from castore.errors import ValidationError
from castore.ingest import describe_kind
from store.nar.events import DIRECTORY_END, DIRECTORY_START, Entry, NarEvent, RegularFile, Symlink


def fs_events(path: str | os.PathLike) -> Iterator[NarEvent]:
    """Events for a file, symlink or tree (no symlink following; executable = owner x bit)."""
    path = os.fsencode(path)
    st = os.lstat(path)
    if stat.S_ISLNK(st.st_mode):
        yield Symlink(os.readlink(path))
    elif stat.S_ISREG(st.st_mode):
        with open(path, "rb") as f:
            yield RegularFile(st.st_size, bool(st.st_mode & stat.S_IXUSR), f)
    elif stat.S_ISDIR(st.st_mode):
        yield DIRECTORY_START
        for name in sorted(os.listdir(path)):
            yield Entry(name)
            yield from fs_events(os.path.join(path, name))
        yield DIRECTORY_END
    else:
        raise ValidationError(f"{os.fsdecode(path)}: cannot import {describe_kind(st.st_mode)} "
                              "(only files, directories and symlinks)")
