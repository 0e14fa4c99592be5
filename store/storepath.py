"""Store paths: the immutable StorePath value and the content-address builders of SPEC 5.

A store path is `/nix/store/<nixbase32 of a 20-byte digest>-<name>`. The builders
compute that digest the way C++ Nix does for every content-addressed kind.
"""

from __future__ import annotations

from collections import namedtuple
from typing import Iterable

from castore.errors import ValidationError
from castore.value import Value
from store import nixbase32
from store.nixhash import HashAlgo, NixHash

STORE_DIR = "/nix/store"
DIGEST_SIZE = 20
ENCODED_DIGEST_LENGTH = nixbase32.encoded_length(DIGEST_SIZE)  # 32
MAX_NAME_LENGTH = 211
_NAME_CHARS = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+-._?=")
"""What a name may hold (checked by set, not by a pattern compiled at import: every command parses paths)."""


class StorePath(Value, namedtuple("StorePath", "digest name")):
    """A 20-byte digest and a name, checked at construction; orders like Nix, by basename."""

    __slots__ = ()
    digest: bytes
    name: str

    def __new__(cls, digest: bytes, name: str) -> StorePath:
        if len(digest) != DIGEST_SIZE:
            raise ValidationError(f"store path digest must be {DIGEST_SIZE} bytes, got {len(digest)}")
        if not 1 <= len(name) <= MAX_NAME_LENGTH or not _NAME_CHARS.issuperset(name):
            raise ValidationError(
                f"invalid store path name {name[:80]!r}: "
                f"1..{MAX_NAME_LENGTH} characters of [A-Za-z0-9+-._?=]")
        return tuple.__new__(cls, (digest, name))

    @classmethod
    def from_basename(cls, basename: str) -> StorePath:
        """Parse `<32 nixbase32 chars>-<name>`."""
        if len(basename) < ENCODED_DIGEST_LENGTH + 2 or basename[ENCODED_DIGEST_LENGTH] != "-":
            raise ValidationError(f"invalid store path basename {basename[:120]!r}")
        digest = nixbase32.decode(basename[:ENCODED_DIGEST_LENGTH])
        return cls(digest, basename[ENCODED_DIGEST_LENGTH + 1:])

    @classmethod
    def parse(cls, absolute: str) -> StorePath:
        """Parse `/nix/store/<basename>`; anything below the store path is rejected."""
        prefix = STORE_DIR + "/"
        if not absolute.startswith(prefix):
            raise ValidationError(f"{absolute[:120]!r} is not in {STORE_DIR}")
        return cls.from_basename(absolute[len(prefix):])

    @property
    def hash_part(self) -> str:
        """The 32 nixbase32 characters, as in `<hash>.narinfo`."""
        return nixbase32.encode(self.digest)

    @property
    def basename(self) -> str:
        return f"{self.hash_part}-{self.name}"

    @property
    def absolute(self) -> str:
        return f"{STORE_DIR}/{self.basename}"

    def __str__(self) -> str:
        return self.absolute

    def __lt__(self, other: StorePath) -> bool:
        return self.basename < other.basename


def make_store_path(type_: str, inner: NixHash, name: str) -> StorePath:
    """Nix's makeStorePath: sha256 of `<type>:<algo>:<hex>:/nix/store:<name>`, folded to 20 bytes."""
    import hashlib  # OpenSSL takes 4 ms to load: parsing a path needs none of it

    h = hashlib.sha256(f"{type_}:{inner.base16()}:{STORE_DIR}:{name}".encode()).digest()
    out = bytearray(DIGEST_SIZE)
    for i, b in enumerate(h):
        out[i % DIGEST_SIZE] ^= b
    return StorePath(bytes(out), name)


def make_source_path(name: str, nar_sha256: bytes, references: Iterable[StorePath] = (),
                     self_reference: bool = False) -> StorePath:
    """A recursive sha256 content address, as `nix-store --add` and make-content-addressed produce."""
    return make_store_path(_type_with_references("source", references, self_reference),
                           NixHash(HashAlgo.SHA256, nar_sha256), name)


def make_fixed_output_path(name: str, hash_: NixHash, recursive: bool,
                           references: Iterable[StorePath] = (), self_reference: bool = False) -> StorePath:
    """A fixed-output path (`nix-store --add-fixed [--recursive]`); only recursive sha256 may have references."""
    if recursive and hash_.algo is HashAlgo.SHA256:
        return make_source_path(name, hash_.digest, references, self_reference)
    if self_reference or any(True for _ in references):
        raise ValidationError("only recursive sha256 content addresses can have references")
    prefix = "r:" if recursive else ""
    inner = NixHash.of(HashAlgo.SHA256, f"fixed:out:{prefix}{hash_.base16()}:".encode())
    return make_store_path("output:out", inner, name)


def make_text_path(name: str, contents_sha256: bytes, references: Iterable[StorePath] = ()) -> StorePath:
    """A text path (builtins.toFile, .drv files): sha256 of the contents, references in the type."""
    return make_store_path(_type_with_references("text", references, False),
                           NixHash(HashAlgo.SHA256, contents_sha256), name)


def _type_with_references(type_: str, references: Iterable[StorePath], self_reference: bool) -> str:
    """Nix's makeType: the references as a sorted set of absolute paths, then `:self`."""
    parts = [type_, *(p.absolute for p in sorted(set(references)))]
    if self_reference:
        parts.append("self")
    return ":".join(parts)
