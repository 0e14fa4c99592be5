"""Streaming FastCDC: content-defined chunks of a stream of any length, in bounded memory.

The cut after a chunk start depends only on the `max_size` bytes that follow it, so a
chunk is final as soon as that many bytes are buffered (or the stream ended). Emitting
only final chunks makes the result identical to chunking the whole input at once.
"""

from __future__ import annotations

from typing import NamedTuple

KiB = 1024


class ChunkingParams(NamedTuple):
    min_size: int
    avg_size: int
    max_size: int

    def describe(self) -> str:
        """How the store records them: changing any of these changes every chunk."""
        return f"fastcdc-cy-gear/{self.min_size}/{self.avg_size}/{self.max_size}"


DEFAULT_PARAMS = ChunkingParams(16 * KiB, 64 * KiB, 256 * KiB)
WINDOW = 4 * 1024 * KiB
"""Bytes buffered before cutting: large enough that re-scanning is rare, small enough to ignore."""


class StreamChunker:
    """Feed bytes in pieces of any size; get chunks back in order, each exactly once."""

    def __init__(self, params: ChunkingParams = DEFAULT_PARAMS, window: int = WINDOW) -> None:
        self.params = params
        self._window = max(window, 2 * params.max_size)
        self._buf = bytearray()

    def feed(self, data: bytes | memoryview) -> list[bytes]:
        """Chunks that became final with `data`; the rest stays buffered."""
        out: list[bytes] = []
        with memoryview(data) as view:
            for start in range(0, len(view), self._window):
                self._buf += view[start:start + self._window]
                if len(self._buf) >= self._window:
                    out += self._cut(final=False)
        return out

    def finish(self) -> list[bytes]:
        """The remaining chunks at end of stream (none for an empty stream)."""
        return self._cut(final=True)

    def _cut(self, *, final: bool) -> list[bytes]:
        # Imported here: the fastcdc package pulls in click (~40 ms), which processes
        # that only read the store should not pay for.
        from fastcdc.fastcdc_cy import fastcdc_cy

        p = self.params
        buf = self._buf
        if final and len(buf) <= p.min_size:  # what FastCDC does too, minus its overhead
            tail = [bytes(buf)] if buf else []
            buf.clear()
            return tail
        out: list[bytes] = []
        pos = 0
        with memoryview(buf) as view:
            cuts = fastcdc_cy(view, p.min_size, p.avg_size, p.max_size)
            while final or len(buf) - pos >= p.max_size:
                chunk = next(cuts, None)
                if chunk is None:
                    break
                pos = chunk.offset + chunk.length
                out.append(bytes(view[chunk.offset:pos]))
            del cuts  # releases its export of the buffer before the buffer shrinks
        del buf[:pos]
        return out
