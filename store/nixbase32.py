"""Nix's base32: the alphabet without e, o, t, u, read from the last 5-bit group of the input first."""

from castore.errors import ValidationError

ALPHABET = "0123456789abcdfghijklmnpqrsvwxyz"
_INDEX = {c: i for i, c in enumerate(ALPHABET)}


def encoded_length(size: int) -> int:
    """Characters needed for `size` bytes: ceil(8 * size / 5)."""
    return (size * 8 + 4) // 5


def encode(data: bytes) -> str:
    """Character k takes the 5-bit group at bit (len-1-k)*5 of `data` read as a little-endian number."""
    n = int.from_bytes(data, "little")
    length = encoded_length(len(data))
    return "".join(ALPHABET[(n >> (5 * (length - 1 - k))) & 31] for k in range(length))


def decode(text: str) -> bytes:
    """The inverse of encode; rejects unknown characters, impossible lengths and stray high bits."""
    size = len(text) * 5 // 8
    if encoded_length(size) != len(text):
        raise ValidationError(f"invalid nixbase32 length {len(text)}: {text[:64]!r}")
    n = 0
    for c in text:
        i = _INDEX.get(c)
        if i is None:
            raise ValidationError(f"invalid nixbase32 character {c!r} in {text[:64]!r}")
        n = (n << 5) | i
    if n >> (8 * size):
        raise ValidationError(f"nixbase32 {text[:64]!r} has non-zero leftover bits")
    return n.to_bytes(size, "little")
