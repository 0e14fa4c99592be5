"""castore -> NAR: the bytes of a root node, byte-identical to `nix-store --dump`, whole or
any byte range of it, from its layout (see `layout`).

The whole NAR asks the blob service for the files' contents in NAR order with one
read_many, so a backend can fetch ahead while earlier pieces are written. A range reads only
the files it overlaps: the one it starts in is opened and seeked to where the range starts.
Memory stays bounded by the pieces in flight and the layout, not by the contents. File
contents are checked against their declared sizes.
"""

from __future__ import annotations

import contextlib
from typing import TYPE_CHECKING, Iterable, Iterator, Sequence

from castore.blobs.service import READ_SIZE, BlobService
from castore.digest import B3Digest
from castore.errors import NotFoundError
from castore.nodes import FileNode, Node
from castore.url import CAStore
from store.errors import NarError
from store.nar.layout import NarLayout, lay_out

if TYPE_CHECKING:
    from store.nar.skeleton import NarSkeleton

FLUSH_SIZE = 1 << 16
"""Grammar and small files are gathered into pieces of about this size; larger contents pass as read."""


def render_nar(store: CAStore, node: Node) -> Iterator[bytes]:
    """The NAR of `node` in pieces (grammar and small files gathered to about FLUSH_SIZE, larger
    contents as read); raises NotFoundError naming a missing blob or directory, NarError when a
    blob's size is not its node's."""
    yield from render_layout(store.blobs, lay_out(store.directories, node))


def render_layout(blobs: BlobService, layout: NarLayout | NarSkeleton, flush: int = FLUSH_SIZE) -> Iterator[bytes]:
    """The whole NAR of a layout (or of its skeleton), as render_nar, with pieces gathered to about
    `flush` bytes (a consumer that hands them on one by one wants them large: each handoff costs
    the same)."""
    digests = layout.digests
    with contextlib.closing(blobs.read_many(digests)) as contents:
        yield from _pieces(layout, digests, contents, flush)


def _pieces(layout: NarLayout | NarSkeleton, digests: Sequence[B3Digest],
            contents: Iterable[Iterable[bytes] | None], flush: int) -> Iterator[bytes]:
    pending: list[bytes] = []
    size = 0
    for index, (grammar, remaining, pieces) in enumerate(zip(layout.framing, layout.sizes, contents)):
        if pieces is None:
            raise missing_blob(digests[index], layout.file_name(index))
        pending.append(grammar)
        size += len(grammar)
        for piece in pieces:
            remaining -= len(piece)
            if remaining < 0:
                raise _longer(digests[index], layout.file_name(index), layout.sizes[index])
            if len(piece) < flush:
                pending.append(piece)
                size += len(piece)
                if size < flush:
                    continue
                piece = b"".join(pending)
            elif pending:
                yield b"".join(pending)
            pending, size = [], 0
            yield piece
        if remaining:
            raise _shorter(digests[index], layout.file_name(index), remaining)
        if size >= flush:
            yield b"".join(pending)
            pending, size = [], 0
    pending.append(layout.framing[-1])
    yield b"".join(pending)


def render_range(blobs: BlobService, layout: NarLayout, first: int, end: int) -> Iterator[bytes]:
    """Bytes `first` up to `end` (exclusive, 0 <= first < end <= layout.size) of the NAR, reading
    only the files they overlap; errors as render_nar, but a blob longer than its node is
    noticed only when the range covers its end."""
    import bisect  # not loaded by `cairn dump`, which renders whole NARs

    files, offsets = layout.files, layout.offsets
    start = bisect.bisect_right(offsets, first)  # the first file whose contents start after `first`
    if start and offsets[start - 1] + files[start - 1].size > first:
        start -= 1  # `first` lies in this file's contents
    stop = bisect.bisect_left(offsets, end, lo=start)  # the first file whose contents start at `end` or later
    if start < stop and offsets[start] < first:  # the range starts inside a file: seek there
        skip = first - offsets[start]
        yield from _seeked(blobs, files[start], skip, min(end - offsets[start], files[start].size) - skip)
        start += 1
    if start < stop:
        with contextlib.closing(blobs.read_many(f.digest for f in files[start:stop])) as contents:
            for index, pieces in zip(range(start, stop), contents):
                yield from _framing(layout, index, first, end)
                file = files[index]
                if pieces is None:
                    raise missing_blob(file.digest, file.name)
                yield from _prefix(file, pieces, min(end - offsets[index], file.size))
    yield from _framing(layout, stop, first, end)


def _framing(layout: NarLayout, index: int, first: int, end: int) -> Iterator[bytes]:
    """What of `framing[index]` lies in the range."""
    start = layout.framing_start(index)
    piece = layout.framing[index][max(first - start, 0):max(end - start, 0)]
    if piece:
        yield piece


def _seeked(blobs: BlobService, file: FileNode, skip: int, want: int) -> Iterator[bytes]:
    """`want` bytes of a file's contents from `skip` on, reading nothing before them."""
    reader = blobs.open_read(file.digest)
    if reader is None:
        raise missing_blob(file.digest, file.name)
    with reader:
        reader.seek(skip)
        while want:
            piece = reader.read(min(want, READ_SIZE))
            if not piece:
                raise _shorter(file.digest, file.name, want)
            want -= len(piece)
            yield piece


def _prefix(file: FileNode, pieces: Iterable[bytes], want: int) -> Iterator[bytes]:
    """The first `want` bytes of a file's pieces; NarError when they run out first."""
    for piece in pieces:
        if len(piece) >= want:
            if want:
                yield piece[:want]
            return
        want -= len(piece)
        yield piece
    if want:
        raise _shorter(file.digest, file.name, want)


def require_blobs(blobs: BlobService, layout: NarLayout | NarSkeleton) -> None:
    """NotFoundError naming a file whose blob `blobs` lacks; one lookup of every digest, each once
    (so a NAR can be refused before its first byte)."""
    first: dict[B3Digest, int] = {}
    for index, digest in enumerate(layout.digests):
        first.setdefault(digest, index)
    for (digest, index), present in zip(first.items(), blobs.has_many(list(first))):
        if not present:
            raise missing_blob(digest, layout.file_name(index))


def missing_blob(digest: bytes, name: bytes) -> NotFoundError:
    return NotFoundError(f"blob {B3Digest(digest)} of {name!r} not found")


def _longer(digest: bytes, name: bytes, size: int) -> NarError:
    return NarError(f"blob {B3Digest(digest)} of {name!r} is longer than its node's {size} bytes")


def _shorter(digest: bytes, name: bytes, remaining: int) -> NarError:
    return NarError(f"blob {B3Digest(digest)} of {name!r} is {remaining} bytes shorter than its node says")


def calculate_nar(store: CAStore, node: Node) -> tuple[int, bytes]:
    """NarSize (from the layout) and NarHash (sha256, by rendering it once) of `node`."""
    import hashlib  # about 2 ms to load: `cairn dump` renders without it

    layout = lay_out(store.directories, node)
    sha256 = hashlib.sha256()
    for piece in render_layout(store.blobs, layout):
        sha256.update(piece)
    return layout.size, sha256.digest()
