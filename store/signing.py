"""Narinfo signatures: the fingerprint Nix signs, ed25519 keys in Nix's file formats, and verification.

A signature covers the store path, NAR hash, NAR size and references only, so a
server may change URL, Compression, FileHash and FileSize and keep it valid.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass
from typing import TYPE_CHECKING, Iterable

from castore.errors import ValidationError
from store import nixbase32
from store.storepath import StorePath

if TYPE_CHECKING:
    from store.narinfo import NarInfo

SIGNATURE_SIZE = 64
PUBLIC_KEY_SIZE = 32
SECRET_KEY_SIZE = 64  # seed || public key, as libsodium stores it


def fingerprint(store_path: StorePath, nar_sha256: bytes, nar_size: int,
                references: Iterable[StorePath]) -> bytes:
    """`1;<path>;sha256:<nixbase32>;<size>;<refs joined by ','>`, references in the order given."""
    if len(nar_sha256) != 32:
        raise ValidationError(f"NAR sha256 must be 32 bytes, got {len(nar_sha256)}")
    if nar_size <= 0:
        raise ValidationError("cannot fingerprint a path with NAR size 0")
    refs = ",".join(r.absolute for r in references)
    return f"1;{store_path.absolute};sha256:{nixbase32.encode(nar_sha256)};{nar_size};{refs}".encode()


def _check_key_name(name: str) -> None:
    if not name or ":" in name or any(c.isspace() for c in name):
        raise ValidationError(f"invalid key name {name!r}: empty, or contains ':' or whitespace")


def _split_named(text: str, what: str, size: int) -> tuple[str, bytes]:
    """`<name>:<base64>` with a non-empty name and exactly `size` decoded bytes."""
    name, sep, b64 = text.strip().partition(":")
    if not sep:
        raise ValidationError(f"{what} {text[:80]!r} is not '<name>:<base64>'")
    try:
        data = base64.b64decode(b64, validate=True)
    except ValueError:  # binascii.Error, or non-ASCII text
        raise ValidationError(f"{what} {name!r} is not valid base64") from None
    if len(data) != size:
        raise ValidationError(f"{what} {name!r} must decode to {size} bytes, got {len(data)}")
    return name, data


def _join_named(name: str, data: bytes) -> str:
    return f"{name}:{base64.b64encode(data).decode()}"


@dataclass(frozen=True, slots=True)
class Signature:
    """One `Sig:` value: the signing key's name and 64 bytes of ed25519 signature."""

    key_name: str
    data: bytes

    def __post_init__(self) -> None:
        _check_key_name(self.key_name)
        if len(self.data) != SIGNATURE_SIZE:
            raise ValidationError(f"signature must be {SIGNATURE_SIZE} bytes, got {len(self.data)}")

    @classmethod
    def parse(cls, text: str) -> Signature:
        return cls(*_split_named(text, "signature", SIGNATURE_SIZE))

    def __str__(self) -> str:
        return _join_named(self.key_name, self.data)


@dataclass(frozen=True, slots=True)
class PublicKey:
    """A trusted key as Nix writes it: `name:base64(32 bytes)`."""

    name: str
    key: bytes

    def __post_init__(self) -> None:
        _check_key_name(self.name)
        if len(self.key) != PUBLIC_KEY_SIZE:
            raise ValidationError(f"public key must be {PUBLIC_KEY_SIZE} bytes, got {len(self.key)}")

    @classmethod
    def parse(cls, text: str) -> PublicKey:
        """The contents of a public key file or one `trusted-public-keys` entry."""
        return cls(*_split_named(text, "public key", PUBLIC_KEY_SIZE))

    def __str__(self) -> str:
        return _join_named(self.name, self.key)

    def verify(self, message: bytes, signature: Signature) -> bool:
        """True when `signature` is by this key (same name) over `message`."""
        if signature.key_name != self.name:
            return False
        import nacl.exceptions

        try:
            _nacl().VerifyKey(self.key).verify(message, signature.data)
        except nacl.exceptions.BadSignatureError:
            return False
        return True


@dataclass(frozen=True, slots=True)
class SecretKey:
    """A signing key as `nix key generate-secret` writes it: `name:base64(seed || public)`."""

    name: str
    seed: bytes

    def __post_init__(self) -> None:
        _check_key_name(self.name)
        if len(self.seed) != 32:
            raise ValidationError(f"secret key seed must be 32 bytes, got {len(self.seed)}")

    @classmethod
    def parse(cls, text: str) -> SecretKey:
        """The contents of a secret key file; the public half must match the seed."""
        name, data = _split_named(text, "secret key", SECRET_KEY_SIZE)
        key = cls(name, data[:32])
        if key.public_key().key != data[32:]:
            raise ValidationError(f"secret key {name!r}: public half does not match the seed")
        return key

    @classmethod
    def generate(cls, name: str) -> SecretKey:
        return cls(name, bytes(_nacl().SigningKey.generate()))

    def __str__(self) -> str:
        return _join_named(self.name, self.seed + self.public_key().key)

    def public_key(self) -> PublicKey:
        return PublicKey(self.name, bytes(_nacl().SigningKey(self.seed).verify_key))

    def sign(self, message: bytes) -> Signature:
        return Signature(self.name, _nacl().SigningKey(self.seed).sign(message).signature)


def verify_narinfo(info: NarInfo, trusted: Iterable[PublicKey]) -> bool:
    """True when at least one of the narinfo's signatures is valid under a trusted key."""
    message = info.fingerprint()
    keys = list(trusted)
    return any(key.verify(message, sig) for sig in info.signatures for key in keys)


def _nacl():
    """PyNaCl's signing module, loaded on first use: commands that never sign or verify (a dump)
    do not pay its import."""
    import nacl.signing

    return nacl.signing
