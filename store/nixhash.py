"""A hash as Nix writes it: an algorithm plus a digest, in `algo:<nixbase32|hex|base64>` or SRI form."""

from __future__ import annotations

import base64
import re
from collections import namedtuple
from enum import Enum
from typing import TYPE_CHECKING

from castore.errors import ValidationError
from castore.value import Value
from store import nixbase32

if TYPE_CHECKING:
    import hashlib

_HEX = r"[0-9a-fA-F]*"
"""Compiled (and cached by re) when a hash is parsed: reading a stored path parses none."""


class HashAlgo(Enum):
    """The algorithms Nix names in content addresses and narinfos, valued by their text name."""

    MD5 = "md5"
    SHA1 = "sha1"
    SHA256 = "sha256"
    SHA512 = "sha512"

    @property
    def size(self) -> int:
        return _SIZES[self.value]

    def new(self) -> hashlib._Hash:
        import hashlib  # OpenSSL takes 4 ms to load: reading a PathInfo needs only the sizes

        return hashlib.new(self.value)

    @classmethod
    def parse(cls, name: str) -> HashAlgo:
        try:
            return cls(name)
        except ValueError:
            raise ValidationError(f"unknown hash algorithm {name!r}") from None


_SIZES = {"md5": 16, "sha1": 20, "sha256": 32, "sha512": 64}


class NixHash(Value, namedtuple("NixHash", "algo digest")):
    __slots__ = ()
    algo: HashAlgo
    digest: bytes

    def __new__(cls, algo: HashAlgo, digest: bytes) -> NixHash:
        if len(digest) != algo.size:
            raise ValidationError(f"{algo.value} digest must be {algo.size} bytes, got {len(digest)}")
        return tuple.__new__(cls, (algo, digest))

    @classmethod
    def parse(cls, text: str) -> NixHash:
        """`algo:<body>` with the body in nixbase32, hex or base64 (told apart by length), or SRI `algo-<base64>`."""
        name, sep, body = text.partition(":")
        if sep:
            return cls.parse_body(HashAlgo.parse(name), body)
        name, sep, body = text.partition("-")
        if sep:
            algo = HashAlgo.parse(name)
            return cls(algo, _base64(body, text))
        raise ValidationError(f"hash {text[:80]!r} lacks an algorithm prefix")

    @classmethod
    def parse_body(cls, algo: HashAlgo, body: str) -> NixHash:
        """The unprefixed body of a hash whose algorithm is known, in any of Nix's three encodings."""
        size = algo.size
        if len(body) == 2 * size and re.fullmatch(_HEX, body):
            return cls(algo, bytes.fromhex(body))
        if len(body) == nixbase32.encoded_length(size):
            return cls(algo, nixbase32.decode(body))
        if len(body) == 4 * ((size + 2) // 3):
            return cls(algo, _base64(body, body))
        raise ValidationError(f"{algo.value} hash {body[:80]!r} is not {size} bytes in hex, nixbase32 or base64")

    @classmethod
    def of(cls, algo: HashAlgo, data: bytes) -> NixHash:
        h = algo.new()
        h.update(data)
        return cls(algo, h.digest())

    def nix32(self) -> str:
        """The form narinfos, CA fields and fingerprints use: `algo:<nixbase32>`."""
        return f"{self.algo.value}:{nixbase32.encode(self.digest)}"

    def base16(self) -> str:
        """The form store path computations hash: `algo:<lowercase hex>`."""
        return f"{self.algo.value}:{self.digest.hex()}"

    def __str__(self) -> str:
        return self.nix32()


def _base64(body: str, context: str) -> bytes:
    try:
        return base64.b64decode(body, validate=True)
    except ValueError:  # binascii.Error, or non-ASCII text
        raise ValidationError(f"invalid base64 in hash {context[:80]!r}") from None
