"""File trees for NAR tests: a small in-memory model, its NAR events, and a real directory walker."""

from __future__ import annotations

import io
import os
import stat
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, Union

from store.nar import DIRECTORY_END, DIRECTORY_START, DirectoryEnd, DirectoryStart, Entry, NarEvent, RegularFile, Symlink


@dataclass(frozen=True)
class File:
    data: bytes
    executable: bool = False


@dataclass(frozen=True)
class Link:
    target: bytes


Tree = Union[File, Link, dict]  # a dict maps entry names (bytes) to trees


def tree_events(tree: Tree) -> Iterator[NarEvent]:
    if isinstance(tree, File):
        yield RegularFile(len(tree.data), tree.executable, io.BytesIO(tree.data))
    elif isinstance(tree, Link):
        yield Symlink(tree.target)
    else:
        yield DIRECTORY_START
        for name in sorted(tree):
            yield Entry(name)
            yield from tree_events(tree[name])
        yield DIRECTORY_END


def events_tree(events: Iterator[NarEvent]) -> Tree:
    """Rebuild the model from events, reading every file's contents (proves the reader's data)."""
    stack: list[tuple[dict, bytes | None]] = []
    root: list[Tree] = []

    def place(node: Tree) -> None:
        if stack:
            parent, name = stack[-1]
            parent[name] = node
        else:
            root.append(node)

    for event in events:
        if isinstance(event, RegularFile):
            place(File(event.contents.read(), event.executable))
        elif isinstance(event, Symlink):
            place(Link(event.target))
        elif isinstance(event, DirectoryStart):
            d: dict = {}
            place(d)
            stack.append((d, None))
        elif isinstance(event, Entry):
            stack[-1] = (stack[-1][0], event.name)
        elif isinstance(event, DirectoryEnd):
            stack.pop()
    assert len(root) == 1
    return root[0]


def fs_events(path: Path) -> Iterator[NarEvent]:
    """What `nix-store --dump path` describes, as events; files stay open only while being read."""
    st = os.lstat(path)
    if stat.S_ISLNK(st.st_mode):
        yield Symlink(os.readlink(os.fsencode(path)))
    elif stat.S_ISREG(st.st_mode):
        with open(path, "rb") as f:
            yield RegularFile(st.st_size, bool(st.st_mode & stat.S_IXUSR), f)
    elif stat.S_ISDIR(st.st_mode):
        yield DIRECTORY_START
        for name in sorted(os.listdir(os.fsencode(path))):
            yield Entry(name)
            yield from fs_events(path / os.fsdecode(name))
        yield DIRECTORY_END
    else:
        raise ValueError(f"{path}: not a file, directory or symlink")
