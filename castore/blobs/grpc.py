"""BlobService client of a remote `tvix.castore.v1.BlobService`; every byte is verified here.

Writes stream through a small bounded queue, so memory stays flat whatever the blob
size. Reads use the blob's chunk list when the server has one (chunks are fetched on
demand, each checked against its digest), else one sequential stream checked at EOF.
"""

from __future__ import annotations

import bisect
import io
import queue
from typing import Callable, Iterator

import blake3
import grpc

from castore.blobs.service import BlobService, BlobStat, BlobWriter, ChunkMeta
from castore.digest import B3Digest
from castore.errors import CorruptionError, NotFoundError
from castore.grpc_common import MESSAGE_CHUNK, channels, rpc_errors
from castore.grpc_server import BLOB_SIZE_KEY
from castore.proto import rpc_blobstore_pb2 as pb
from castore.proto.rpc_blobstore_pb2_grpc import BlobServiceStub
from castore.url import GrpcEndpoint

WRITE_QUEUE = 4
"""Messages a writer may have in flight: bounds its memory to a few MESSAGE_CHUNKs."""


class GrpcBlobService(BlobService):
    """Blobs of the daemon at a gRPC endpoint (castore.url.grpc_endpoint)."""

    concurrent_writes = True  # each Put is durable when answered: in flight together, they share syncs

    def __init__(self, endpoint: GrpcEndpoint) -> None:
        self._endpoint = endpoint
        self._target = endpoint.target
        self._channel: grpc.Channel | None = channels.acquire(endpoint)
        self._stub = BlobServiceStub(self._channel)

    def has(self, digest: B3Digest) -> bool:
        return self._stat_call(digest, send_chunks=False) is not None

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

    def open_write(self) -> BlobWriter:
        return _GrpcBlobWriter(self._stub, self._target)

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
        while True:
            try:
                self._queue.get_nowait()
            except queue.Empty:
                break
        self._queue.put_nowait(None)

    def __del__(self) -> None:
        self.abort()  # dropped without close(): the server must not wait for more

    def _started(self) -> grpc.Future:
        if self._call is None:
            self._call = self._stub.Put.future(_requests(self._queue))
        return self._call

    def _push(self, piece: bytes | None) -> None:
        """Queue a message (None ends the stream), failing fast if the call has ended."""
        call = self._started()
        while True:
            try:
                self._queue.put(piece, timeout=0.1)
                return
            except queue.Full:
                if call.done():
                    with rpc_errors(self._target):
                        call.result()
                    raise CorruptionError(f"{self._target} answered a Put before it ended")


def _requests(pieces: queue.Queue[bytes | None]) -> Iterator[pb.BlobChunk]:
    """The request stream of a Put (a function of the queue only, so the writer can be dropped)."""
    while (piece := pieces.get()) is not None:
        yield pb.BlobChunk(data=piece)
