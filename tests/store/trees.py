"""File trees for NAR tests: a small in-memory model, its NAR events, and a real directory walker."""

from __future__ import annotations

import io
from dataclasses import dataclass
from typing import Iterator, Union

from store.nar.events import (DIRECTORY_END, DIRECTORY_START, DirectoryEnd, DirectoryStart, Entry,
                              NarEvent, RegularFile, Symlink)


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

