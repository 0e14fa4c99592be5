"""Delta chunks: a new chunk much like a stored one is kept as zstd with the stored one as dictionary.

Content-defined chunking finds identical chunks, but a rebuilt binary (relocated addresses)
or an edited source file gives chunks that are nearly, not exactly, the same, and those
dedup to nothing. On the corpus, the new chunks of numpy 2.1.1 and 2.1.2 take 3.5 and 3.9 MB
compressed alone and 1.3 and 1.1 MB as deltas against 2.1.0; Django 5.1's changed files
take 1.0 MB alone and 0.4 MB as deltas against 5.0.

Similar chunks are found by a sketch: the chunk is cut into small content-defined pieces and
the smallest piece hashes are its features (a bottom-k min-hash: two chunks share a feature
about as often as they share pieces). Only plain chunks are indexed as bases, so reading a
delta needs one plain chunk and never a chain.
"""

from __future__ import annotations

import zlib

import zstandard

FEATURES = 4
"""Features per chunk (index records per plain chunk): 4 find nearly every base 8 find."""
PIECES = (64, 256, 1024)
"""FastCDC min/avg/max of the sketch's pieces: small, so a few changed bytes spoil few of them."""
MIN_SIZE = 2048
"""Smaller chunks are neither sketched nor delta-encoded: their index records would cost about
what a delta saves."""


def features(data: bytes) -> list[bytes]:
    """The chunk's sketch: its FEATURES smallest piece hashes, as index keys of 64 bits (CRC-32,
    which orders them, then Adler-32). The smallest 32-bit hashes of unrelated chunks collide
    often (about 4 of 8,000 chunks of 512 MiB of random bytes matched one), and each such match
    reads a base (a GET from object storage) for a delta that cannot pay."""
    from fastcdc.fastcdc_cy import fastcdc_cy  # see chunker.py: imported only by writers

    with memoryview(data) as view:
        pieces = {zlib.crc32(view[c.offset:c.offset + c.length]): c for c in fastcdc_cy(view, *PIECES)}
        smallest = [(crc, pieces[crc]) for crc in sorted(pieces)[:FEATURES]]  # Adler-32 of these only
        return [crc.to_bytes(4, "big") + zlib.adler32(view[c.offset:c.offset + c.length]).to_bytes(4, "big")
                for crc, c in smallest]


def _dictionary(base: bytes) -> zstandard.ZstdCompressionDict:
    return zstandard.ZstdCompressionDict(base, dict_type=zstandard.DICT_TYPE_RAWCONTENT)


def encode(data: bytes, base: bytes, level: int) -> bytes:
    """`data` as a zstd frame that refers back into `base`."""
    return zstandard.ZstdCompressor(level=level, dict_data=_dictionary(base)).compress(data)


def decode(payload: bytes, base: bytes) -> bytes:
    """The chunk a delta encodes (the caller verifies its digest); ZstdError if it is corrupt."""
    return zstandard.ZstdDecompressor(dict_data=_dictionary(base)).decompress(payload)
