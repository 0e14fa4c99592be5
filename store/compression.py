"""NAR file compressions, both ways, streaming: every compression Nix writes to a binary cache.

Decompressing readers yield bounded pieces whatever the compression ratio, so a
small malicious upload cannot balloon in memory, and turn codec errors into
CompressionError (a ValidationError: the edge answers 400). Compressing is for
serving an uploaded NAR again under its compressed name (clients remember the
narinfo they uploaded), at fast levels: the bytes differ from the upload, which
Nix allows (FileHash is not signed or checked on download).
"""

from __future__ import annotations

import bz2
import lzma
from typing import Callable, Iterable, Iterator, Protocol

import brotli
import zstandard

from castore.errors import ValidationError
from store.nar import SupportsRead

EXTENSIONS = {"": "none", ".xz": "xz", ".bz2": "bzip2", ".zst": "zstd", ".br": "br"}
"""`nar/<FileHash>.nar<ext>` as Nix names uploads, to the narinfo's Compression value."""
COMPRESSIONS = frozenset(EXTENSIONS.values())
OUT_PIECE = 1 << 20
IN_PIECE = 1 << 16


FAST_COMPRESSORS: dict[str, Callable[[], _Compressor]] = {
    "xz": lambda: lzma.LZMACompressor(preset=1),
    "bzip2": lambda: bz2.BZ2Compressor(1),
    "zstd": lambda: zstandard.ZstdCompressor(level=3).compressobj(),
    "br": lambda: _BrotliCompressor(),
}


class CompressionError(ValidationError):
    """Compressed data that is malformed, truncated, or followed by junk."""


class UnsupportedCompression(ValidationError):
    """A compression Nix may write but this bridge does not decode (lzip, lz4)."""


def decompressing(source: SupportsRead, compression: str) -> SupportsRead:
    """A reader of the decompressed bytes of `source`; "none" passes it through."""
    if compression == "none":
        return source
    if compression == "zstd":
        reader = zstandard.ZstdDecompressor().stream_reader(source, read_size=IN_PIECE, read_across_frames=True)
        return _ZstdReader(reader)
    decoders: dict[str, Callable[[], _Decoder]] = {
        "xz": lzma.LZMADecompressor, "bzip2": bz2.BZ2Decompressor, "br": _BrotliDecoder}
    if compression not in decoders:
        raise UnsupportedCompression(f"unsupported compression {compression!r} "
                                     f"(supported: {', '.join(sorted(COMPRESSIONS))})")
    return _DecodingReader(source, decoders[compression](), compression)


def compressing(pieces: Iterable[bytes], compression: str) -> Iterator[bytes]:
    """The pieces compressed as one stream; "none" passes them through."""
    if compression == "none":
        yield from pieces
        return
    if compression not in FAST_COMPRESSORS:
        raise UnsupportedCompression(f"unsupported compression {compression!r}")
    compressor = FAST_COMPRESSORS[compression]()
    for piece in pieces:
        yield compressor.compress(piece)
    yield compressor.flush()


class _Compressor(Protocol):
    def compress(self, data: bytes) -> bytes: ...

    def flush(self) -> bytes: ...


class _BrotliCompressor:
    def __init__(self) -> None:
        self._c = brotli.Compressor(quality=1)

    def compress(self, data: bytes) -> bytes:
        return self._c.process(data)

    def flush(self) -> bytes:
        return self._c.finish()


class _Decoder(Protocol):
    """The incremental API lzma and bz2 share: bounded output, then drain with empty input."""

    def decompress(self, data: bytes, max_length: int = -1) -> bytes: ...

    @property
    def needs_input(self) -> bool: ...

    @property
    def eof(self) -> bool: ...

    @property
    def unused_data(self) -> bytes: ...


class _BrotliDecoder:
    """brotli.Decompressor behind the lzma/bz2 interface. Its output limit is only a hint (it
    may give more), so whatever goes past max_length is held back for the next calls."""

    def __init__(self) -> None:
        self._d = brotli.Decompressor()
        self._held = b""

    def decompress(self, data: bytes, max_length: int = -1) -> bytes:
        if max_length < 0:
            out, self._held = self._held + self._d.process(data), b""
            return out
        if data or len(self._held) < max_length:  # input comes only once the held output is gone
            self._held += self._d.process(data, output_buffer_limit=max_length - len(self._held))
        out, self._held = self._held[:max_length], self._held[max_length:]
        return out

    @property
    def needs_input(self) -> bool:
        return not self._held and self._d.can_accept_more_data()

    @property
    def eof(self) -> bool:
        return not self._held and self._d.is_finished()

    @property
    def unused_data(self) -> bytes:
        return b""  # brotli itself fails on bytes after the end of its stream


class _DecodingReader:
    def __init__(self, source: SupportsRead, decoder: _Decoder, name: str) -> None:
        self._source = source
        self._decoder = decoder
        self._name = name
        self._done = False

    def read(self, size: int = -1, /) -> bytes:
        limit = OUT_PIECE if size is None or size < 0 else min(size, OUT_PIECE)
        if self._done or limit == 0:
            return b""
        while True:
            if self._decoder.eof:
                self._finish()
                return b""
            data = self._source.read(IN_PIECE) if self._decoder.needs_input else b""
            try:
                out = self._decoder.decompress(data, limit)
            except (lzma.LZMAError, OSError, EOFError, brotli.error) as e:  # bz2 says OSError
                raise CompressionError(f"malformed {self._name} data: {e}") from None
            if out:
                return out
            if not data and not self._decoder.eof:  # brotli may hold output back until asked with no input
                raise CompressionError(f"{self._name} data is truncated")

    def _finish(self) -> None:
        self._done = True
        if self._decoder.unused_data or self._source.read(1):
            raise CompressionError(f"trailing bytes after the {self._name} stream")


class _ZstdReader:
    """zstd, bounded by the library's stream reader. A stream cut short between frames or blocks
    reads as a shorter stream (the library does not say); its readers notice: the NAR reader
    needs the whole NAR, and an upload must hash to its name."""

    def __init__(self, reader: zstandard.ZstdDecompressionReader) -> None:
        self._reader = reader

    def read(self, size: int = -1, /) -> bytes:
        limit = OUT_PIECE if size is None or size < 0 else min(size, OUT_PIECE)
        try:
            return self._reader.read(limit)
        except zstandard.ZstdError as e:
            raise CompressionError(f"malformed zstd data: {e}") from None
