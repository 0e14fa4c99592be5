"""BlobService client of a remote `tvix.castore.v1.BlobService`; every byte is verified here.

Writes stream through a small bounded queue, so memory stays flat whatever the blob
size. Reads use the blob's chunk list when the server has one (chunks are fetched on
demand, each checked against its digest), else one sequential stream checked at EOF.
A Cairn daemon also serves cairn.castore.v1.BlobBatchService (castore/grpc_batch.py):
read_many and write_many then use one call for many blobs.
"""

from __future__ import annotations

import bisect
import collections
import io
import itertools
import queue
from typing import Callable, Generator, Iterable, Iterator, Sequence, TypeVar

import blake3
import grpc

from castore.blobs.service import BlobBatchWriter, BlobService, BlobStat, BlobWriter, ChunkMeta
from castore.digest import B3Digest
from castore.errors import BackendError, CorruptionError, NotFoundError
from castore.directories.grpc import GrpcDirectoryService
from castore.directories.service import DirectoryService
from castore.grpc_common import BLOB_SIZE_KEY, HAS_MANY_MAX, MESSAGE_CHUNK, channels, error_from, gathered, part_sizes, rpc_errors
from castore.nodes import Directory
from castore.proto import rpc_blobbatch_pb2 as batch_pb
from castore.proto import rpc_blobstore_pb2 as pb
from castore.proto.rpc_blobbatch_pb2_grpc import BlobBatchServiceStub
from castore.proto.rpc_blobstore_pb2_grpc import BlobServiceStub
from castore.url import GrpcEndpoint

WRITE_QUEUE = 4
"""Messages a writer may have in flight: bounds its memory to a few MESSAGE_CHUNKs."""
REQUEST_DIGESTS = 4096
"""Digests per ReadMany request message."""
SYNC_BYTES = 64 << 20
"""Bytes a batch writer sends before it syncs on its own (the daemon holds them uncommitted)."""
T = TypeVar("T")


class GrpcBlobService(BlobService):
    """Blobs of the daemon at a gRPC endpoint (castore.url.grpc_endpoint)."""

    concurrent_writes = True  # each Put is durable when answered: in flight together, they share syncs

    def __init__(self, endpoint: GrpcEndpoint) -> None:
        self._endpoint = endpoint
        self._target = endpoint.target
        self._channel: grpc.Channel | None = channels.acquire(endpoint)
        self._stub = BlobServiceStub(self._channel)
        self._batch_stub = BlobBatchServiceStub(self._channel)
        self._batched: bool | None = None  # whether the server has BlobBatchService: asked once
        self._has_many = True  # until a server without HasMany says so

    def has(self, digest: B3Digest) -> bool:
        return self._stat_call(digest, send_chunks=False) is not None

    def has_many(self, digests: Sequence[B3Digest]) -> list[bool]:
        """HasMany calls of up to HAS_MANY_MAX digests each; a server without it (Tvix, Snix, an
        older Cairn) says UNIMPLEMENTED, and is then asked blob by blob."""
        found: list[bool] = []
        for first in range(0, len(digests), HAS_MANY_MAX):
            if not self._has_many:
                break
            group = [B3Digest(d) for d in digests[first:first + HAS_MANY_MAX]]
            try:
                response = self._batch_stub.HasMany(batch_pb.HasManyRequest(digests=group))
            except grpc.RpcError as e:
                if e.code() != grpc.StatusCode.UNIMPLEMENTED:
                    raise error_from(e, self._target) from None
                self._has_many = False
                break
            if len(response.found) != len(group):
                raise BackendError(f"gRPC {self._target}: HasMany answered {len(response.found)} of "
                                   f"{len(group)} blobs")
            found.extend(response.found)
        return found + super().has_many(digests[len(found):])

    def stat(self, digest: B3Digest) -> BlobStat | None:
        found = self._stat_call(digest, send_chunks=True)
        if found is None:
            return None
        chunks, size = found
        return BlobStat(self._count(digest) if size is None else size, chunks)

    def open_read(self, digest: B3Digest) -> io.RawIOBase | None:
        found = self._stat_call(digest, send_chunks=True)
        if found is None:
            return None
        chunks, size = found
        if len(chunks) > 1:
            return _BlobReader(_ChunkSource(digest, chunks, self._fetch))
        return _BlobReader(_StreamSource(digest, size, lambda: self._read_stream(digest)))

    def read_many(self, digests: Iterable[B3Digest]) -> Generator[Iterable[bytes] | None, None, None]:
        """One ReadMany call for all of them (the server reads ahead); each blob verified before
        it is yielded, or chunk by chunk for a chunked one (their sum checked at its end). A
        server without ReadMany says so before its first message: then blob by blob."""
        digests = [B3Digest(d) for d in digests]
        if self._batched is False or not digests:
            yield from super().read_many(digests)
            return
        call = self._batch_stub.ReadMany(_read_requests(digests))
        try:
            first = self._opened(call)
            if not self._batched:
                yield from super().read_many(digests)
                return
            parts = self._parts(itertools.chain(first, call))
            for digest in digests:
                head = self._next(parts, "head").head
                if not head.found:
                    yield None
                elif not head.inline:
                    yield from self._read_through(digest)
                elif head.chunks:
                    chunks = self._chunks_of(digest, head, parts)
                    yield chunks
                    collections.deque(chunks, maxlen=0)  # what the consumer left unread
                else:
                    sizes = part_sizes(head)
                    data = b"".join(self._next(parts, "data", size).data for size in sizes) if sizes else head.data
                    if len(data) != head.size or B3Digest.of(data) != digest:
                        raise CorruptionError(f"blob {digest} from {self._target} does not match its digest")
                    yield (data,)
        finally:
            call.cancel()

    def open_write(self) -> BlobWriter:
        return _GrpcBlobWriter(self._stub, self._target)

    def write_many(self) -> BlobBatchWriter | None:
        return _PutManyWriter(self._batch_stub, self._endpoint) if self._has_batches() else None

    def close(self) -> None:
        if self._channel is not None:
            self._channel = None
            channels.release(self._endpoint)

    def _stat_call(self, digest: B3Digest,
                   send_chunks: bool) -> tuple[tuple[ChunkMeta, ...], int | None] | None:
        """Chunk list and size (None if a foreign server sent neither), or None when unknown."""
        request = pb.StatBlobRequest(digest=B3Digest(digest), send_chunks=send_chunks)
        try:
            with rpc_errors(self._target):
                response, call = self._stub.Stat.with_call(request)
        except NotFoundError:
            return None
        chunks = tuple(ChunkMeta(B3Digest(c.digest), c.size) for c in response.chunks)
        metadata = dict(call.trailing_metadata() or ())
        if BLOB_SIZE_KEY in metadata:
            return chunks, int(metadata[BLOB_SIZE_KEY])
        return chunks, sum(c.size for c in chunks) if chunks else None

    def _read_stream(self, digest: B3Digest) -> Iterator[bytes]:
        """The data messages of one Read call; cancelled when the consumer lets go."""
        call = self._stub.Read(pb.ReadBlobRequest(digest=digest))
        try:
            with rpc_errors(self._target):
                for message in call:
                    yield message.data
        finally:
            call.cancel()

    def _fetch(self, chunk: ChunkMeta) -> bytes:
        """One chunk, whole and verified."""
        data = b"".join(self._read_stream(chunk.digest))
        if len(data) != chunk.size or B3Digest.of(data) != chunk.digest:
            raise CorruptionError(f"chunk {chunk.digest} from {self._target} does not match its digest")
        return data

    def _has_batches(self) -> bool:
        """Whether the server serves BlobBatchService (an empty ReadMany tells)."""
        if self._batched is None:
            self._opened(self._batch_stub.ReadMany(iter(())))
        return self._batched

    def _opened(self, call: Iterator[batch_pb.ReadManyResponse]) -> list[batch_pb.ReadManyResponse]:
        """The first message of a ReadMany call, if any; learns whether the server has ReadMany
        (one without says UNIMPLEMENTED before any message), so it is asked once."""
        try:
            first = next(call, None)
        except grpc.RpcError as e:
            if e.code() != grpc.StatusCode.UNIMPLEMENTED:
                raise error_from(e, self._target) from None
            self._batched = False
            return []
        self._batched = True
        return [] if first is None else [first]

    def _parts(self, call: Iterator[batch_pb.ReadManyResponse]) -> Iterator[batch_pb.BlobPart]:
        with rpc_errors(self._target):
            for message in call:
                yield from message.parts

    def _next(self, parts: Iterator[batch_pb.BlobPart], kind: str, size: int | None = None) -> batch_pb.BlobPart:
        """The next part, which must be of `kind` (and carry `size` bytes of data)."""
        part = next(parts, None)
        if part is None or part.WhichOneof("part") != kind or (size is not None and len(part.data) != size):
            raise CorruptionError(f"{self._target} sent a ReadMany stream that does not match the blobs' heads")
        return part

    def _chunks_of(self, digest: B3Digest, head: batch_pb.BlobHead,
                   parts: Iterator[batch_pb.BlobPart]) -> Iterator[bytes]:
        """A chunked blob's data parts, each checked against its chunk; their sum against the blob."""
        whole = blake3.blake3()
        for chunk in head.chunks:
            data = self._next(parts, "data", chunk.size).data
            if blake3.blake3(data).digest() != chunk.digest:
                raise CorruptionError(f"chunk {B3Digest(chunk.digest)} from {self._target} does not match its digest")
            whole.update(data)
            yield data
        if whole.digest() != digest:
            raise CorruptionError(f"blob {digest}: its chunks from {self._target} do not add up to its digest")

    def _count(self, digest: B3Digest) -> int:
        """The size of a one-piece blob from a server that does not say it: read it."""
        return _StreamSource(digest, None, lambda: self._read_stream(digest)).size()


class _StreamSource:
    """A blob read as one Read stream from the start: hashed as it arrives, checked at EOF.

    Reading forward skips; reading backward starts a new stream.
    """

    def __init__(self, digest: B3Digest, size: int | None, open_stream: Callable[[], Iterator[bytes]]) -> None:
        self._digest = digest
        self._size = size
        self._open = open_stream
        self._stream: Iterator[bytes] | None = None
        self._hasher = blake3.blake3()
        self._start = 0  # blob offset of self._buf[0]
        self._buf = b""

    def read_at(self, pos: int, n: int) -> bytes:
        """Up to n bytes at pos (fewer at a message boundary); b"" at EOF."""
        if self._stream is None or pos < self._start:
            self._restart()
        while pos >= self._start + len(self._buf):
            if not self._advance():
                return b""
        offset = pos - self._start
        return self._buf[offset:offset + n]

    def size(self) -> int:
        """The blob's size, reading to the end if nobody said it."""
        if self._size is None:
            while self._advance():
                pass
        return self._size

    def close(self) -> None:
        if self._stream is not None:
            self._stream.close()
            self._stream = None

    def _restart(self) -> None:
        self.close()
        self._stream = self._open()
        self._hasher = blake3.blake3()
        self._start, self._buf = 0, b""

    def _advance(self) -> bool:
        """Replace the buffer by the next message; at the end, verify; False at EOF."""
        if self._stream is None:
            self._restart()
        for data in self._stream:
            if data:
                self._hasher.update(data)
                self._start, self._buf = self._start + len(self._buf), data
                return True
        end = self._start + len(self._buf)
        if B3Digest(self._hasher.digest()) != self._digest or self._size not in (None, end):
            raise CorruptionError(f"blob {self._digest}: received data does not match its digest")
        self._size = end
        self._start, self._buf = end, b""
        return False


class _ChunkSource:
    """A chunked blob: chunks fetched on demand and verified; the current one kept.

    Chunks fetched in order are also hashed together, so a sequential read checks the
    chunk list itself against the blob digest.
    """

    def __init__(self, digest: B3Digest, chunks: tuple[ChunkMeta, ...], fetch: Callable[[ChunkMeta], bytes]) -> None:
        self._digest = digest
        self._chunks = chunks
        self._fetch = fetch
        self._offsets = [0]
        for c in chunks:
            self._offsets.append(self._offsets[-1] + c.size)
        self._current = -1
        self._data = b""
        self._hasher = blake3.blake3()
        self._hashed = 0  # chunks hashed so far, in order

    def read_at(self, pos: int, n: int) -> bytes:
        if pos >= self.size():
            return b""
        index = bisect.bisect_right(self._offsets, pos) - 1
        if index != self._current:
            self._data, self._current = self._fetch(self._chunks[index]), index
            self._hash_in_order(index)
        offset = pos - self._offsets[index]
        return self._data[offset:offset + n]

    def size(self) -> int:
        return self._offsets[-1]

    def close(self) -> None:
        self._data = b""

    def _hash_in_order(self, index: int) -> None:
        if index != self._hashed:
            return
        self._hasher.update(self._data)
        self._hashed += 1
        if self._hashed == len(self._chunks) and B3Digest(self._hasher.digest()) != self._digest:
            raise CorruptionError(f"blob {self._digest}: its chunks do not add up to its digest")


class _BlobReader(io.RawIOBase):
    """A seekable reader over a stream or chunk source."""

    def __init__(self, source: _StreamSource | _ChunkSource) -> None:
        self._source = source
        self._pos = 0

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._pos

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self._pos}.get(whence)
        if base is None:
            base = self._source.size()
        if base + offset < 0:
            raise ValueError(f"negative seek position {base + offset}")
        self._pos = base + offset
        return self._pos

    def read(self, size: int | None = -1) -> bytes:
        if self.closed:
            raise ValueError("read from a closed blob reader")
        if size is None or size < 0:
            return self.readall()
        data = self._source.read_at(self._pos, size)
        self._pos += len(data)
        return bytes(data)

    def readall(self) -> bytes:
        parts = []
        while part := self.read(MESSAGE_CHUNK):
            parts.append(part)
        return b"".join(parts)

    def readinto(self, buffer) -> int:
        data = self.read(len(buffer))
        buffer[:len(data)] = data
        return len(data)

    def close(self) -> None:
        self._source.close()
        super().close()


class _GrpcBlobWriter(BlobWriter):
    """Streams a Put while the caller writes; close() checks the server's digest against ours."""

    def __init__(self, stub: BlobServiceStub, target: str) -> None:
        self._stub = stub
        self._target = target
        self._hasher = blake3.blake3()
        self._buf = bytearray()
        self._queue: queue.Queue[bytes | None] = queue.Queue(WRITE_QUEUE)
        self._call: grpc.Future | None = None
        self._closed = False

    def write(self, data: bytes | memoryview) -> int:
        self._hasher.update(data)
        self._buf += data
        while len(self._buf) >= MESSAGE_CHUNK:
            self._push(bytes(self._buf[:MESSAGE_CHUNK]))
            del self._buf[:MESSAGE_CHUNK]
        return len(data)

    def close(self) -> B3Digest:
        if self._buf:
            self._push(bytes(self._buf))
            self._buf.clear()
        self._push(None)
        self._closed = True
        with rpc_errors(self._target):
            digest = B3Digest(self._started().result().digest)
        if digest != B3Digest(self._hasher.digest()):
            raise CorruptionError(f"{self._target} stored blob {digest}, but we sent {B3Digest(self._hasher.digest())}")
        return digest

    def abort(self) -> None:
        """Cancel the upload and release the request stream."""
        if self._call is None or self._closed:
            return
        self._closed = True
        self._call.cancel()
        _end(self._queue)

    def __del__(self) -> None:
        self.abort()  # dropped without close(): the server must not wait for more

    def _started(self) -> grpc.Future:
        if self._call is None:
            self._call = self._stub.Put.future(_requests(self._queue))
        return self._call

    def _push(self, piece: bytes | None) -> None:
        _enqueue(self._queue, piece, self._started(), self._target)


class _PutManyWriter(BlobBatchWriter):
    """One PutMany stream: blobs gathered into messages of about MESSAGE_CHUNK; wait() sends a
    sync and reads the acknowledgements, checking each digest against the one computed here;
    finish() sends the tree's directories along when they go to the same daemon."""

    def __init__(self, stub: BlobBatchServiceStub, endpoint: GrpcEndpoint) -> None:
        self._endpoint = endpoint
        self._target = endpoint.target
        self._queue: queue.Queue[batch_pb.PutManyRequest | None] = queue.Queue(WRITE_QUEUE)
        self._call = stub.PutMany(_until_end(self._queue))
        self._blobs: list[bytes] = []
        self._size = 0
        self._unacked: collections.deque[B3Digest] = collections.deque()
        self._unacked_bytes = 0
        self._closed = False

    def put(self, data: bytes) -> B3Digest:
        digest = B3Digest.of(data)
        self._blobs.append(bytes(data))
        self._size += len(data)
        if self._size >= MESSAGE_CHUNK:
            self._send(sync=False)
        self._sent(digest, len(data))
        return digest

    def open_write(self) -> BlobWriter:
        self._send(sync=False)  # the blobs put before it go first: acknowledgements come in order
        return _PieceWriter(self)

    def wait(self) -> None:
        if self._unacked:
            self._send(sync=True)
            self._acknowledged(to_end=False)

    def finish(self, directories: Sequence[Directory], service: DirectoryService) -> None:
        """The closure goes after the blobs, so the daemon commits both at once; a daemon that
        acknowledges no root knows no directories in PutMany: they then go through `service`."""
        if not directories or not (isinstance(service, GrpcDirectoryService) and service.endpoint == self._endpoint):
            super().finish(directories, service)
            return
        for encodings in gathered(d.encoded for d in directories):
            self._enqueue(batch_pb.PutManyRequest(directories=encodings))
        self._send(sync=True)
        self._enqueue(None)
        root = self._acknowledged(to_end=True)
        if not root:
            service.put(directories)
        elif root != directories[-1].digest:
            raise CorruptionError(f"{self._target} stored root {B3Digest(root)}, but we sent "
                                  f"{directories[-1].digest} last")

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        if self._unacked or self._blobs:
            self._call.cancel()  # nothing promised for them: do not make the server store them
        _end(self._queue)

    def __del__(self) -> None:
        self.close()  # dropped without close(): the request stream must end

    def _acknowledged(self, to_end: bool) -> bytes:
        """Read acknowledgements, each checked against the blobs sent, until every blob is
        acknowledged (`to_end`: until the call ends); the root digest they carried, or b""."""
        root = b""
        with rpc_errors(self._target):
            while self._unacked or to_end:
                response = next(self._call, None)
                if response is None:
                    if self._unacked:
                        raise BackendError(f"{self._target} ended PutMany before it acknowledged every blob")
                    break
                for stored in response.digests:
                    if not self._unacked or stored != self._unacked.popleft():
                        raise CorruptionError(f"{self._target} acknowledged blob {B3Digest(stored)}, "
                                              "which is not the next one sent")
                root = response.root_digest or root
        self._unacked_bytes = 0
        return root

    def _sent(self, digest: B3Digest, size: int) -> None:
        """Count a blob sent, to be acknowledged in its turn (a sync every SYNC_BYTES)."""
        self._unacked.append(digest)
        self._unacked_bytes += size
        if self._unacked_bytes >= SYNC_BYTES:
            self.wait()

    def _send(self, sync: bool) -> None:
        if not (self._blobs or sync):
            return
        request = batch_pb.PutManyRequest(blobs=self._blobs, sync=sync)
        self._blobs, self._size = [], 0
        self._enqueue(request)

    def _enqueue(self, request: batch_pb.PutManyRequest | None) -> None:
        _enqueue(self._queue, request, self._call, self._target)


class _PieceWriter(BlobWriter):
    """One large blob in a PutMany stream, in pieces of MESSAGE_CHUNK; hashed here, so close()
    returns its digest at once, and the acknowledgement is checked against it."""

    def __init__(self, stream: _PutManyWriter) -> None:
        self._stream = stream
        self._hasher = blake3.blake3()
        self._buf = bytearray()
        self._size = 0

    def write(self, data: bytes | memoryview) -> int:
        self._hasher.update(data)
        self._buf += data
        self._size += len(data)
        while len(self._buf) >= MESSAGE_CHUNK:
            self._stream._enqueue(batch_pb.PutManyRequest(blob_piece=bytes(self._buf[:MESSAGE_CHUNK])))
            del self._buf[:MESSAGE_CHUNK]
        return len(data)

    def close(self) -> B3Digest:
        self._stream._enqueue(batch_pb.PutManyRequest(blob_piece=bytes(self._buf), blob_end=True))
        self._buf.clear()
        digest = B3Digest(self._hasher.digest())
        self._stream._sent(digest, self._size)
        return digest

    def abort(self) -> None:
        """The server holds part of a blob: the stream cannot go on (nothing since the last
        wait() was promised)."""
        self._stream._call.cancel()
        self._stream.close()


def _enqueue(pending: queue.Queue[T | None], item: T | None, call: grpc.Future, target: str) -> None:
    """Queue a request message (None ends the stream), failing fast if the call has ended."""
    while True:
        try:
            pending.put(item, timeout=0.1)
            return
        except queue.Full:
            if call.done():
                with rpc_errors(target):
                    call.result()
                raise CorruptionError(f"{target} answered a call before its requests ended")


def _end(pending: queue.Queue) -> None:
    """End a request stream now, dropping what it still holds."""
    while True:
        try:
            pending.get_nowait()
        except queue.Empty:
            break
    pending.put_nowait(None)


def _until_end(pending: queue.Queue[T | None]) -> Iterator[T]:
    """A request stream (a function of the queue only, so its writer can be dropped)."""
    while (item := pending.get()) is not None:
        yield item


def _requests(pieces: queue.Queue[bytes | None]) -> Iterator[pb.BlobChunk]:
    """The request stream of a Put."""
    return (pb.BlobChunk(data=piece) for piece in _until_end(pieces))


def _read_requests(digests: list[B3Digest]) -> Iterator[batch_pb.ReadManyRequest]:
    for start in range(0, len(digests), REQUEST_DIGESTS):
        yield batch_pb.ReadManyRequest(digests=digests[start:start + REQUEST_DIGESTS])
