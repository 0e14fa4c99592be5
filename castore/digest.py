"""The 32-byte BLAKE3 digest that addresses blobs, chunks and directories, and its text forms."""

from __future__ import annotations

import base64

import blake3

from castore.errors import ValidationError

DIGEST_SIZE = 32


class B3Digest(bytes):
    """A BLAKE3-256 digest: exactly 32 bytes, checked once at construction."""

    __slots__ = ()

    def __new__(cls, value: bytes) -> B3Digest:
        if type(value) is B3Digest:
            return value
        if len(value) != DIGEST_SIZE:
            raise ValidationError(f"digest must be {DIGEST_SIZE} bytes, got {len(value)}")
        return bytes.__new__(cls, value)

    @classmethod
    def of(cls, data: bytes | memoryview) -> B3Digest:
        """The digest of `data`."""
        return cls(blake3.blake3(data).digest())

    @classmethod
    def parse(cls, text: str) -> B3Digest:
        """Accept `b3:<base64>` (Tvix), `blake3-<base64>` (Snix) or 64 hex characters."""
        for prefix in ("b3:", "blake3-"):
            if text.startswith(prefix):
                try:
                    raw = base64.b64decode(text[len(prefix):], validate=True)
                except ValueError:  # binascii.Error, or non-ASCII text
                    raise ValidationError(f"invalid base64 in digest {text!r}") from None
                return cls(raw)
        try:
            return cls(bytes.fromhex(text))
        except ValueError:
            raise ValidationError(f"not a digest: {text!r} (want b3:<base64>, blake3-<base64> or hex)") from None

    def b3(self) -> str:
        """Tvix's text form, `b3:` + standard base64."""
        return "b3:" + base64.b64encode(self).decode()

    def __str__(self) -> str:
        return self.b3()

    def __repr__(self) -> str:
        return f"B3Digest({self.b3()})"


EMPTY_DIGEST = B3Digest.of(b"")
