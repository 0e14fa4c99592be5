"""castore -> NAR: the bytes of a root node, byte-identical to `nix-store --dump`.

The directory closure is fetched with one recursive get (one round trip to a remote
service) and laid out as the NAR's grammar around its files; the files' contents are
then asked of the blob service in NAR order with one read_many, so a backend can fetch
ahead while earlier pieces are written. Memory stays bounded by the pieces in flight and
the layout (a few bytes per entry), not by the contents.

Every node was validated when it was built (names, their order, targets), so the layout
needs no grammar checks; file contents are checked against their declared sizes.
"""

from __future__ import annotations

import contextlib
from typing import Iterable, Iterator

from castore.digest import B3Digest
from castore.errors import NotFoundError
from castore.nodes import Directory, DirectoryNode, FileNode, Node
from castore.url import CAStore
from store.errors import NarError
from store.nar.wire import CLOSE, DIRECTORY_OPEN, NAR_HEADER, entry_open, regular_header, regular_trailer, symlink_node

FLUSH_SIZE = 1 << 16
"""Grammar and small files are gathered into pieces of about this size; larger contents pass as read."""


Layout = tuple[list[tuple[bytes, FileNode]], bytes]
"""A NAR without its file contents: each file with the grammar before it, then what follows the last."""


def render_nar(store: CAStore, node: Node) -> Iterator[bytes]:
    """The NAR of `node` in pieces (grammar and small files gathered to about FLUSH_SIZE, larger
    contents as read); raises NotFoundError naming a missing blob or directory, NarError when a
    blob's size is not its node's."""
    files, tail = _lay_out(_Closure(store, node), node)
    with contextlib.closing(store.blobs.read_many(file.digest for _, file in files)) as contents:
        yield from _pieces(files, tail, contents)


def _pieces(files: list[tuple[bytes, FileNode]], tail: bytes,
            contents: Iterable[Iterable[bytes] | None]) -> Iterator[bytes]:
    pending: list[bytes] = []
    size = 0
    for (grammar, file), pieces in zip(files, contents):
        if pieces is None:
            raise NotFoundError(f"blob {file.digest} of {file.name!r} not found")
        pending.append(grammar)
        size += len(grammar)
        remaining = file.size
        for piece in pieces:
            remaining -= len(piece)
            if remaining < 0:
                raise NarError(f"blob {file.digest} of {file.name!r} is longer than its node's {file.size} bytes")
            if len(piece) < FLUSH_SIZE:
                pending.append(piece)
                size += len(piece)
                continue
            if pending:
                yield b"".join(pending)
                pending, size = [], 0
            yield piece
        if remaining:
            raise NarError(f"blob {file.digest} of {file.name!r} is {remaining} bytes shorter than its node says")
        if size >= FLUSH_SIZE:
            yield b"".join(pending)
            pending, size = [], 0
    pending.append(tail)
    yield b"".join(pending)


def _lay_out(closure: _Closure, root: Node) -> Layout:
    """Walks the tree with an explicit stack, so depth costs no recursion."""
    files: list[tuple[bytes, FileNode]] = []
    grammar = [NAR_HEADER]
    open_dirs: list[Iterator[Node]] = []  # per open directory, its entries not yet visited
    node = root
    while True:
        if isinstance(node, FileNode):
            grammar.append(regular_header(node.size, node.executable))
            files.append((b"".join(grammar), node))
            grammar = [regular_trailer(node.size)]
        elif isinstance(node, DirectoryNode):
            grammar.append(DIRECTORY_OPEN)
            open_dirs.append(iter(closure.get(node.digest).nodes()))
        else:
            grammar.append(symlink_node(node.target))
        complete = not isinstance(node, DirectoryNode)
        while open_dirs:
            if complete:
                grammar.append(CLOSE)  # the entry that held the complete node
            node = next(open_dirs[-1], None)
            if node is not None:
                grammar.append(entry_open(node.name))
                break
            open_dirs.pop()
            grammar.append(CLOSE)  # the directory
            complete = True
        else:
            return files, b"".join(grammar)


def calculate_nar(store: CAStore, node: Node) -> tuple[int, bytes]:
    """NarSize and NarHash (sha256) of `node`, by rendering it once."""
    import hashlib  # about 2 ms to load: `cairn dump` renders without it

    sha256 = hashlib.sha256()
    size = 0
    for piece in render_nar(store, node):
        sha256.update(piece)
        size += len(piece)
    return size, sha256.digest()


class _Closure:
    """The directories below a root: one recursive get up front, single gets for any it missed."""

    def __init__(self, store: CAStore, node: Node) -> None:
        self._store = store
        self._found: dict[bytes, Directory] = {}
        if isinstance(node, DirectoryNode):
            self._found = {d.digest: d for d in store.directories.get_recursive(node.digest)}

    def get(self, digest: B3Digest) -> Directory:
        found = self._found.get(digest)
        if found is None:
            found = self._store.directories.get(digest)
            if found is None:
                raise NotFoundError(f"directory {digest} not found")
        return found
