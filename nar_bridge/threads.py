"""Blocking work off the event loop: worker pools, and byte streams across the thread boundary.

Store backends (LMDB, gRPC, NAR rendering and ingest, decompression, hashing) block,
so handlers hand them to `Workers`. Streams cross the boundary in both directions
with bounded memory: `PieceChannel` carries rendered pieces from a worker to the
response writer, `BlockingReader` gives a worker a blocking read(n) over a request
or upstream body that the loop owns.
"""

from __future__ import annotations

import asyncio
import collections
import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Callable, Iterator, TypeVar

from aiohttp import StreamReader

T = TypeVar("T")

QUICK_WORKERS = 16
"""Short calls: lookups, puts, listings."""
STREAM_WORKERS = 64
"""Long calls that hold a thread for a whole NAR (render, ingest); past this, streams queue."""
CHANNEL_BYTES = 4 << 20
"""Rendered bytes that may wait for a slow client before the renderer pauses."""
READ_PIECE = 1 << 20
"""The most a worker asks of the loop per read, whatever the caller asked."""
READ_TIMEOUT = 300.0
"""A request body that sends nothing for this long fails the upload."""


class Workers:
    """Two thread pools, so long streams can never starve the short lookups every request needs."""

    def __init__(self, quick: int = QUICK_WORKERS, streams: int = STREAM_WORKERS) -> None:
        self._quick = ThreadPoolExecutor(quick, thread_name_prefix="bridge-quick")
        self._streams = ThreadPoolExecutor(streams, thread_name_prefix="bridge-stream")

    def call(self, fn: Callable[..., T], *args: object) -> asyncio.Future[T]:
        """Run a short blocking call; await the result."""
        return asyncio.get_running_loop().run_in_executor(self._quick, fn, *args)

    def stream(self, fn: Callable[..., T], *args: object) -> asyncio.Future[T]:
        """Start a long blocking call (it runs whether or not the result is awaited)."""
        return asyncio.get_running_loop().run_in_executor(self._streams, fn, *args)

    def close(self) -> None:
        self._quick.shutdown(wait=True, cancel_futures=True)
        self._streams.shutdown(wait=True, cancel_futures=True)


class ChannelClosed(Exception):
    """The consumer went away; the producing worker should stop."""


_END = object()


class PieceChannel:
    """Byte pieces from one worker thread to one coroutine, at most `limit` bytes in flight.

    The producer blocks in put() while the channel is full; the consumer awaits get().
    Either side may end it: the producer with finish(error), the consumer with close(),
    which makes the producer's next put() raise ChannelClosed.
    """

    def __init__(self, loop: asyncio.AbstractEventLoop, limit: int = CHANNEL_BYTES) -> None:
        self._loop = loop
        self._limit = limit
        self._items: collections.deque[object] = collections.deque()
        self._queued = 0
        self._closed = False
        self._space = threading.Condition()
        self._ready = asyncio.Event()

    # -- producer side (a worker thread) --

    def put(self, piece: bytes | memoryview) -> None:
        with self._space:
            while self._queued >= self._limit and not self._closed:
                self._space.wait()
            if self._closed:
                raise ChannelClosed()
            self._items.append(piece)
            self._queued += len(piece)
        self._loop.call_soon_threadsafe(self._ready.set)

    def finish(self, error: BaseException | None = None) -> None:
        """The last item: the end of the stream, or the error that ended it."""
        with self._space:
            self._items.append(_END if error is None else error)
        self._loop.call_soon_threadsafe(self._ready.set)

    def feed(self, pieces: Iterator[bytes | memoryview]) -> None:
        """Run in a worker: put every piece, then finish; stops early when the consumer closes."""
        try:
            for piece in pieces:
                self.put(piece)
        except ChannelClosed:
            return
        except BaseException as e:  # handed to the consumer, which decides what the client sees
            self.finish(e)
        else:
            self.finish()
        finally:
            close = getattr(pieces, "close", None)
            if close is not None:
                close()

    # -- consumer side (the event loop) --

    async def get(self) -> bytes | memoryview | None:
        """The next piece; None at the end; raises the producer's error."""
        while True:
            self._ready.clear()
            with self._space:
                if self._items:
                    item = self._items.popleft()
                    if item is not _END and not isinstance(item, BaseException):  # a piece: bytes or a view
                        self._queued -= len(item)
                        self._space.notify()
                    break
            await self._ready.wait()
        if item is _END:
            return None
        if isinstance(item, BaseException):
            raise item
        return item  # type: ignore[return-value]

    def close(self) -> None:
        with self._space:
            self._closed = True
            self._space.notify_all()


class BlockingReader:
    """A blocking read(n) for a worker thread, over a body stream that belongs to the event loop."""

    def __init__(self, stream: StreamReader, loop: asyncio.AbstractEventLoop) -> None:
        self._stream = stream
        self._loop = loop

    def read(self, size: int = -1, /) -> bytes:
        """Up to `size` bytes (short reads happen), b"" at the end of the body."""
        n = READ_PIECE if size is None or size < 0 else min(size, READ_PIECE)
        if n == 0:
            return b""
        future = asyncio.run_coroutine_threadsafe(self._stream.read(n), self._loop)
        try:
            return future.result(READ_TIMEOUT)
        except TimeoutError:
            future.cancel()
            raise
