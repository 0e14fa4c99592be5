"""The streaming chunker cuts exactly where FastCDC cuts the whole input, whatever the pieces."""

from __future__ import annotations

import random

from fastcdc.fastcdc_cy import fastcdc_cy
from hypothesis import given, settings
from hypothesis import strategies as st

from castore.local.chunker import DEFAULT_PARAMS, ChunkingParams, StreamChunker

# The smallest parameters FastCDC accepts, so short examples still have many cuts.
TINY = ChunkingParams(64, 256, 1024)


def whole(data: bytes, params: ChunkingParams) -> list[bytes]:
    return [data[c.offset:c.offset + c.length]
            for c in fastcdc_cy(data, params.min_size, params.avg_size, params.max_size)]


def streamed(data: bytes, cuts: list[int], params: ChunkingParams, window: int) -> list[bytes]:
    chunker = StreamChunker(params, window=window)
    out, pos = [], 0
    for cut in sorted(cuts) + [len(data)]:
        out += chunker.feed(data[pos:cut])
        pos = max(pos, cut)
    return out + chunker.finish()


@st.composite
def pieces(draw) -> tuple[bytes, list[int]]:
    # Mostly random bytes (varied cut points) with runs of one value (forced max-size cuts).
    parts = draw(st.lists(st.one_of(st.binary(max_size=3000),
                                    st.builds(lambda b, n: bytes([b]) * n, st.integers(0, 255),
                                              st.integers(0, 5000))), max_size=8))
    data = b"".join(parts)
    cuts = draw(st.lists(st.integers(0, len(data)), max_size=12))
    return data, cuts


@settings(max_examples=300, deadline=None)
@given(pieces(), st.sampled_from([2048, 2500, 4096]))
def test_streaming_equals_whole_buffer_chunking(example: tuple[bytes, list[int]], window: int) -> None:
    data, cuts = example
    assert streamed(data, cuts, TINY, window) == whole(data, TINY)


def test_streaming_equals_whole_buffer_with_store_parameters() -> None:
    rnd = random.Random(5)
    data = rnd.randbytes(6 << 20) + bytes(1 << 20) + rnd.randbytes(3 << 20)
    cuts = sorted(rnd.randrange(len(data)) for _ in range(40))
    chunks = streamed(data, cuts, DEFAULT_PARAMS, window=1 << 20)
    assert chunks == whole(data, DEFAULT_PARAMS)
    assert all(DEFAULT_PARAMS.min_size <= len(c) <= DEFAULT_PARAMS.max_size for c in chunks[:-1])


def test_small_input_is_one_chunk_and_empty_input_none() -> None:
    for n in (1, 100, DEFAULT_PARAMS.min_size):
        chunker = StreamChunker()
        assert chunker.feed(b"x" * n) == []
        assert chunker.finish() == [b"x" * n]
    assert StreamChunker().finish() == []


def test_buffer_stays_within_the_window() -> None:
    chunker = StreamChunker(DEFAULT_PARAMS, window=1 << 20)
    rnd = random.Random(1)
    for _ in range(20):
        chunker.feed(rnd.randbytes(700_000))
        assert len(chunker._buf) < (1 << 20) + DEFAULT_PARAMS.max_size
