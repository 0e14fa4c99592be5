"""castore -> filesystem tree: write a root node back exactly, never outside the destination.

Every entry is created relative to an open directory descriptor with O_EXCL and
O_NOFOLLOW, and names are validated by the node types, so a symlink in the tree
can never redirect a later write.
"""

from __future__ import annotations

import os
from typing import Iterator

from castore.errors import CorruptionError, NotFoundError, ValidationError
from castore.nodes import Directory, DirectoryNode, FileNode, Node, SymlinkNode
from castore.url import CAStore

COPY_SIZE = 1 << 20


def export_node(store: CAStore, node: Node, dest: str | os.PathLike) -> None:
    """Create `dest` (which must not exist) holding the tree of `node`."""
    dest = os.fsencode(dest)
    parent, name = os.path.split(os.path.abspath(dest))
    if os.path.lexists(dest):
        raise ValidationError(f"{os.fsdecode(dest)} already exists")
    directories = _fetch_closure(store, node)
    parent_fd = os.open(parent, os.O_RDONLY | os.O_DIRECTORY)
    try:
        _write(store, directories, node, name, parent_fd)
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


def _write(store: CAStore, directories: dict[bytes, Directory], node: Node, name: bytes,
           dir_fd: int) -> None:
    if isinstance(node, SymlinkNode):
        os.symlink(node.target, name, dir_fd=dir_fd)
    elif isinstance(node, FileNode):
        _write_file(store, node, name, dir_fd)
    else:
        directory = directories.get(bytes(node.digest))
        if directory is None:
            raise NotFoundError(f"directory {node.digest} not found")
        os.mkdir(name, 0o755, dir_fd=dir_fd)
        fd = os.open(name, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW, dir_fd=dir_fd)
        try:
            for child in directory.nodes():
                _write(store, directories, child, child.name, fd)
        finally:
            os.close(fd)


def _write_file(store: CAStore, node: FileNode, name: bytes, dir_fd: int) -> None:
    reader = store.blobs.open_read(node.digest)
    if reader is None:
        raise NotFoundError(f"blob {node.digest} of {os.fsdecode(name)} not found")
    mode = 0o755 if node.executable else 0o644
    fd = os.open(name, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, mode, dir_fd=dir_fd)
    written = 0
    try:
        with reader, open(fd, "wb", closefd=False) as out:
            for piece in iter(lambda: reader.read(COPY_SIZE), b""):
                out.write(piece)
                written += len(piece)
        os.fchmod(fd, mode)  # not subject to the umask
    finally:
        os.close(fd)
    if written != node.size:
        raise CorruptionError(f"blob {node.digest} has {written} bytes, node says {node.size}")


def walk(store: CAStore, node: Node, prefix: bytes = b"") -> Iterator[tuple[bytes, Node]]:
    """Every (relative path, node) below a root, parents first, names ascending."""
    yield prefix, node
    if isinstance(node, DirectoryNode):
        directory = store.directories.get(node.digest)
        if directory is None:
            raise NotFoundError(f"directory {node.digest} not found")
        for child in directory.nodes():
            yield from walk(store, child, prefix + b"/" + child.name if prefix else child.name)
