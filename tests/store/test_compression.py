"""Streaming (de)compression of NAR files: exact bytes, never more than asked, clear errors."""

from __future__ import annotations

import bz2
import hashlib
import io
import lzma

import brotli
import pytest
import zstandard

from store.compression import CompressionError, UnsupportedCompression, compressing, decompressing

COMPRESS = {
    "xz": lzma.compress,
    "bzip2": bz2.compress,
    "zstd": lambda b: zstandard.ZstdCompressor().compress(b),
    "br": lambda b: brotli.compress(b, quality=5),
}
DECOMPRESS = {
    "xz": lzma.decompress,
    "bzip2": bz2.decompress,
    "zstd": lambda b: zstandard.ZstdDecompressor().decompressobj().decompress(b),
    "br": brotli.decompress,
}


def sample() -> bytes:
    """Compressible text and incompressible noise, several MB: codecs emit blocks of every kind."""
    noise = b"".join(hashlib.sha512(i.to_bytes(4, "little")).digest() for i in range(20_000))
    text = b"".join(b"line %d of a rather repetitive file\n" % i for i in range(100_000))
    return text + noise + text[:1_000_000]


class ShortReads:
    def __init__(self, data: bytes, step: int) -> None:
        self._f = io.BytesIO(data)
        self._step = step

    def read(self, size: int = -1, /) -> bytes:
        return self._f.read(self._step if size < 0 else min(size, self._step))


@pytest.mark.parametrize("compression", sorted(COMPRESS))
def test_decompressing_returns_exactly_what_was_asked_for(compression):
    data = sample()
    reader = decompressing(ShortReads(COMPRESS[compression](data), 4099), compression)
    out = bytearray()
    sizes = [189_497, 8, 65_536, 1, 3_000_000, 77]  # the NAR reader asks for odd sizes
    i = 0
    while piece := reader.read(sizes[i % len(sizes)]):
        assert len(piece) <= sizes[i % len(sizes)]
        out += piece
        i += 1
    assert bytes(out) == data


def read_all(packed: bytes, compression: str) -> bytes:
    reader = decompressing(io.BytesIO(packed), compression)
    out = bytearray()
    while piece := reader.read(1 << 20):
        out += piece
    return bytes(out)


@pytest.mark.parametrize("compression", sorted(COMPRESS))
def test_truncated_or_trailing_junk_is_an_error(compression):
    data = sample()
    packed = COMPRESS[compression](data)
    with pytest.raises(CompressionError):
        read_all(packed + b"junk" * 4, compression)
    if compression == "zstd":  # the library reads a cut stream as a short one; the NAR reader then fails
        assert len(read_all(packed[:len(packed) // 2], compression)) < len(data)
    else:
        with pytest.raises(CompressionError):
            read_all(packed[:len(packed) // 2], compression)


@pytest.mark.parametrize("compression", sorted(COMPRESS))
def test_compressing_round_trips(compression):
    data = sample()
    pieces = (data[i:i + 100_000] for i in range(0, len(data), 100_000))
    assert DECOMPRESS[compression](b"".join(compressing(pieces, compression))) == data


def test_unknown_compressions_are_refused():
    with pytest.raises(UnsupportedCompression):
        decompressing(io.BytesIO(b""), "lz4")
    assert b"".join(compressing([b"a", b"b"], "none")) == b"ab"
