"""castore -> filesystem tree: write a root node back exactly, never outside the destination.

Every entry is created relative to an open directory descriptor with O_EXCL and
O_NOFOLLOW, and names are validated by the node types, so a symlink in the tree
can never redirect a later write.
"""

from __future__ import annotations

import contextlib
import os
from typing import Iterable, Iterator

from castore.errors import CorruptionError, NotFoundError, ValidationError
from castore.nodes import Directory, DirectoryNode, FileNode, Node, SymlinkNode
from castore.url import CAStore


def export_node(store: CAStore, node: Node, dest: str | os.PathLike) -> None:
    """Create `dest` (which must not exist) holding the tree of `node`.

    Every file's contents come through one read_many, in the order the tree is written, so
    a backend reads ahead (and a remote one sends them in one call) instead of opening a
    reader per file.
    """
    dest = os.fsencode(dest)
    parent, name = os.path.split(os.path.abspath(dest))
    if os.path.lexists(dest):
        raise ValidationError(f"{os.fsdecode(dest)} already exists")
    directories = _fetch_closure(store, node)
    digests = [f.digest for f in _files(directories, node)]
    parent_fd = os.open(parent, os.O_RDONLY | os.O_DIRECTORY)
    try:
        with contextlib.closing(store.blobs.read_many(digests)) as contents:
            _write(directories, node, name, parent_fd, iter(contents))
    finally:
        os.close(parent_fd)


def _fetch_closure(store: CAStore, node: Node) -> dict[bytes, Directory]:
    """All directories below a directory root, in one recursive get."""
    if not isinstance(node, DirectoryNode):
        return {}
    found = {bytes(d.digest): d for d in store.directories.get_recursive(node.digest)}
    if bytes(node.digest) not in found:
        raise NotFoundError(f"directory {node.digest} not found")
    return found


def _children(directories: dict[bytes, Directory], node: DirectoryNode) -> Iterator[Node]:
    directory = directories.get(bytes(node.digest))
    if directory is None:
        raise NotFoundError(f"directory {node.digest} not found")
    return iter(directory.nodes())


def _walk(directories: dict[bytes, Directory], node: Node, name: bytes) -> Iterator[tuple[Node | None, bytes]]:
    """(node, name) for `node` and everything below it in tree order, and (None, b"") when a
    directory's children are done. Iterative: a tree may be deeper than Python's stack."""
    yield node, name
    if not isinstance(node, DirectoryNode):
        return
    stack = [_children(directories, node)]
    while stack:
        child = next(stack[-1], None)
        if child is None:
            stack.pop()
            yield None, b""
            continue
        yield child, child.name
        if isinstance(child, DirectoryNode):
            stack.append(_children(directories, child))


def _files(directories: dict[bytes, Directory], node: Node) -> Iterator[FileNode]:
    """The file nodes below `node` in the order _write meets them."""
    return (n for n, _ in _walk(directories, node, b"") if isinstance(n, FileNode))


def _write(directories: dict[bytes, Directory], node: Node, name: bytes, parent_fd: int,
           contents: Iterator[Iterable[bytes] | None]) -> None:
    """Create `name` in `parent_fd` for `node`; `contents` yields the files' contents in tree order.
    Each directory being filled is held open (one descriptor per level) until its children are done."""
    fds = [parent_fd]
    try:
        for node, name in _walk(directories, node, name):
            if node is None:
                os.close(fds.pop())
            elif isinstance(node, SymlinkNode):
                os.symlink(node.target, name, dir_fd=fds[-1])
            elif isinstance(node, FileNode):
                pieces = next(contents)
                if pieces is None:
                    raise NotFoundError(f"blob {node.digest} of {os.fsdecode(name)} not found")
                _write_file(node, pieces, name, fds[-1])
            else:
                os.mkdir(name, 0o755, dir_fd=fds[-1])
                fds.append(os.open(name, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW, dir_fd=fds[-1]))
    finally:
        for fd in fds[1:]:
            os.close(fd)


def _write_file(node: FileNode, pieces: Iterable[bytes], name: bytes, dir_fd: int) -> None:
    mode = 0o755 if node.executable else 0o644
    fd = os.open(name, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, mode, dir_fd=dir_fd)
    written = 0
    try:
        for piece in pieces:
            written += len(piece)
            if written > node.size:
                break
            _write_all(fd, piece)
        os.fchmod(fd, mode)  # not subject to the umask
    finally:
        os.close(fd)
    if written != node.size:
        raise CorruptionError(f"blob {node.digest} has {'more than ' if written > node.size else ''}"
                              f"{written} bytes, node says {node.size}")


def _write_all(fd: int, data: bytes) -> None:
    with memoryview(data) as view:
        while view:
            view = view[os.write(fd, view):]


def walk(store: CAStore, node: Node, prefix: bytes = b"") -> Iterator[tuple[bytes, Node]]:
    """Every (relative path, node) below a root, parents first, names ascending."""
    yield prefix, node
    if isinstance(node, DirectoryNode):
        directory = store.directories.get(node.digest)
        if directory is None:
            raise NotFoundError(f"directory {node.digest} not found")
        for child in directory.nodes():
            yield from walk(store, child, prefix + b"/" + child.name if prefix else child.name)
