"""cairn.castore.v1.BlobBatchService and DirectoryBatchService: many blobs, or a closure's
directories, per call (see proto/cairn/castore/v1/rpc_blobbatch.proto).

Python's gRPC costs about 0.4 ms a call on each side, so Tvix's one blob per call made a
tree of small files 20x slower to read, and 10x slower to write, over a unix socket than
in-process. HasMany asks about many blobs in one lookup; ReadMany streams the blobs of a whole
render through the backend's read_many (which reads ahead); GetClosure sends directories a message-full at a time; PutMany stages
every blob of a stream (large ones sent in pieces) and the tree's directories in one batch and
commits when the client syncs, so a whole import shares one commit and its frames (the group
commit that keeps "a blob is acknowledged only once durable").
"""

from __future__ import annotations

import contextlib
import itertools
import operator
from typing import Iterable, Iterator

import grpc

from castore.blobs.service import BlobService, BlobStat, BlobWriter
from castore.digest import B3Digest
from castore.directories.service import DirectoryService
from castore.errors import CorruptionError, NotFoundError, ValidationError
from castore.grpc_common import HAS_MANY_MAX, MESSAGE_CHUNK, gathered, part_sizes
from castore.grpc_server import add_service, numbered
from castore.nodes import Directory
from castore.proto import rpc_blobbatch_pb2 as pb
from castore.turns import in_turns
from castore.uploads import write_blob

INLINE_MAX = 8 << 20
"""Largest chunk, or blob without a chunk list, sent inline when the backend reads it back in
several pieces: the client holds it whole to verify it. Larger ones it reads with
BlobService.Read."""
CLOSURE_MESSAGE = 64 << 10
"""Bytes of encodings per GetClosure message: small, so the client decodes a closure's first
directories while the server reads the rest."""


class BlobBatchServicer:
    """cairn.castore.v1.BlobBatchService over a BlobService, and the DirectoryService that PutMany
    stores closures in."""

    def __init__(self, blobs: BlobService, directories: DirectoryService) -> None:
        self._blobs = blobs
        self._directories = directories

    def HasMany(self, request: pb.HasManyRequest, context: grpc.ServicerContext) -> pb.HasManyResponse:
        if len(request.digests) > HAS_MANY_MAX:
            raise ValidationError(f"HasMany asks about {len(request.digests)} blobs, more than {HAS_MANY_MAX}")
        return pb.HasManyResponse(found=self._blobs.has_many([B3Digest(d) for d in request.digests]))

    def ReadMany(self, requests: Iterator[pb.ReadManyRequest],
                 context: grpc.ServicerContext) -> Iterator[pb.ReadManyResponse]:
        digests = [B3Digest(d) for request in requests for d in request.digests]
        with contextlib.closing(self._blobs.read_many(digests)) as contents:
            parts = (part for digest, pieces in zip(digests, contents) for part in self._blob_parts(digest, pieces))
            yield from in_turns(_messages(parts))  # a message a turn, as NARs are rendered: see castore.turns

    def _blob_parts(self, digest: B3Digest, pieces: Iterable[bytes] | None) -> Iterator[tuple[dict, int]]:
        """A blob's head and data parts, as the fields of BlobPart messages with their data's sizes.
        A blob read back in one piece (most are) is sent as it is; one in several is asked for
        its chunk list, whose chunks the client checks one by one."""
        if pieces is None:
            yield {"head": {"found": False}}, 0
            return
        pieces = iter(pieces)
        first = next(pieces, b"")
        second = next(pieces, None)
        if second is None and len(first) <= MESSAGE_CHUNK:  # most blobs: whole in the head
            yield {"head": {"found": True, "size": len(first), "inline": True, "data": bytes(first)}}, len(first)
            return
        if second is None:
            head = pb.BlobHead(found=True, size=len(first), inline=True)
            pieces = iter((first,))
        else:
            stat = self._blobs.stat(digest)
            if stat is None:
                raise NotFoundError(f"blob {digest} vanished while it was read")
            head = head_of(stat)
            pieces = itertools.chain((first, second), pieces)
        sizes = part_sizes(head)
        if not sizes:  # no chunks, at most MESSAGE_CHUNK: it comes in its head
            head.data = b"".join(cut(pieces, [head.size] if head.size else []))
            yield {"head": head}, head.size
            return
        yield {"head": head}, 0
        if head.inline:
            for data in cut(pieces, sizes):
                yield {"data": data}, len(data)

    def PutMany(self, requests: Iterator[pb.PutManyRequest],
                context: grpc.ServicerContext) -> Iterator[pb.PutManyResponse]:
        requests = iter(requests)
        while True:
            stored, ended = self._store_until_sync(requests)
            if stored.digests or stored.root_digest:
                yield stored
            if ended:
                return

    def _store_until_sync(self, requests: Iterator[pb.PutManyRequest]) -> tuple[pb.PutManyResponse, bool]:
        """Store blobs, then the closure sent with them, up to a sync (or the stream's end), in one
        batch: its exit commits them (with whatever other writers staged), so they are durable
        when acknowledged, and one commit covers a tree (the index grows by each commit's copies)."""
        digests: list[B3Digest] = []
        directories: list[Directory] = []
        ended = True
        large: BlobWriter | None = None  # the blob whose pieces are arriving
        try:
            with self._blobs.batch(), self._directories.batch():
                for request in requests:
                    digests.extend(write_blob(self._blobs, blob) for blob in request.blobs)
                    if request.blob_piece or request.blob_end:
                        large = large or self._blobs.open_write()
                        large.write(request.blob_piece)
                        if request.blob_end:
                            digests.append(large.close())
                            large = None
                    directories.extend(numbered(map(Directory.decode, request.directories), len(directories)))
                    if request.sync:
                        ended = False
                        break
                if large is not None:
                    raise ValidationError("PutMany: a sync or the stream's end came between the pieces of a blob")
                root = self._directories.put(directories) if directories else b""
        finally:
            if large is not None:
                large.abort()
        return pb.PutManyResponse(digests=digests, root_digest=root), ended


class DirectoryBatchServicer:
    """cairn.castore.v1.DirectoryBatchService over a DirectoryService."""

    def __init__(self, directories: DirectoryService) -> None:
        self._directories = directories

    def GetClosure(self, request: pb.GetClosureRequest, context: grpc.ServicerContext) -> Iterator[pb.Encodings]:
        closure = self._directories.get_recursive_encoded(B3Digest(request.root_digest))
        for encodings in gathered(closure, limit=CLOSURE_MESSAGE):
            yield pb.Encodings(directories=encodings)


def head_of(stat: BlobStat | None) -> pb.BlobHead:
    """What the client learns of a blob before its data: found, size, chunks, sent inline or not."""
    if stat is None:
        return pb.BlobHead(found=False)
    largest = max((c.size for c in stat.chunks), default=stat.size)
    return pb.BlobHead(found=True, size=stat.size, inline=largest <= INLINE_MAX,
                       chunks=[pb.ChunkMeta(digest=c.digest, size=c.size) for c in stat.chunks])


def cut(pieces: Iterable[bytes], sizes: list[int]) -> Iterator[bytes]:
    """The pieces re-cut at the given sizes; CorruptionError if they do not add up to them.
    (The local backend's pieces already are a blob's chunks: then nothing is copied twice.)"""
    wanted = iter(sizes)
    want = next(wanted, 0)
    held = bytearray()
    for piece in pieces:
        view = memoryview(piece)
        while view:
            if not want:
                raise CorruptionError("a blob read back is longer than its size")
            if not held and len(view) >= want:
                yield bytes(view[:want])
                view = view[want:]
            else:
                take = min(want - len(held), len(view))
                held += view[:take]
                view = view[take:]
                if len(held) < want:
                    continue
                yield bytes(held)
                held = bytearray()
            want = next(wanted, 0)
    if want:
        raise CorruptionError("a blob read back is shorter than its size")


BATCH_SERVICES = (pb.DESCRIPTOR.services_by_name["BlobBatchService"],
                  pb.DESCRIPTOR.services_by_name["DirectoryBatchService"])
"""Cairn's extensions, served under their own names only (cairn.castore.v1)."""


def add_batch_services(server: grpc.Server, blobs: BlobService, directories: DirectoryService) -> None:
    blob_batch, directory_batch = BATCH_SERVICES
    add_service(server, blob_batch, BlobBatchServicer(blobs, directories), renamed=False)
    add_service(server, directory_batch, DirectoryBatchServicer(directories), renamed=False)


def _messages(parts: Iterable[tuple[dict, int]]) -> Iterator[pb.ReadManyResponse]:
    for group in gathered(parts, size=operator.itemgetter(1)):
        message = pb.ReadManyResponse()
        for fields, _ in group:
            message.parts.add(**fields)  # built in place: a part built apart is copied in again
        yield message
