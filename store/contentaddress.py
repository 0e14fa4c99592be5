"""Content addresses: the narinfo `CA:` text forms, the PathInfo CA.Hash enum, and the store path they imply."""

from __future__ import annotations

from collections import namedtuple
from enum import Enum, IntEnum
from typing import Iterable

from castore.errors import ValidationError
from castore.value import Value
from store.nixhash import HashAlgo, NixHash
from store.storepath import StorePath, make_fixed_output_path, make_text_path


class CAMethod(Enum):
    """How the hashed bytes relate to the store object: its NAR, its flat file, or text (.drv, toFile)."""

    NAR = "nar"
    FLAT = "flat"
    TEXT = "text"


class CAHash(IntEnum):
    """`tvix.store.v1.NARInfo.CA.Hash`: the numbers are wire values (SPEC 3)."""

    NAR_SHA256 = 0
    NAR_SHA1 = 1
    NAR_SHA512 = 2
    NAR_MD5 = 3
    TEXT_SHA256 = 4
    FLAT_SHA1 = 5
    FLAT_MD5 = 6
    FLAT_SHA256 = 7
    FLAT_SHA512 = 8


_BY_PROTO = {
    CAHash.NAR_SHA256: (CAMethod.NAR, HashAlgo.SHA256),
    CAHash.NAR_SHA1: (CAMethod.NAR, HashAlgo.SHA1),
    CAHash.NAR_SHA512: (CAMethod.NAR, HashAlgo.SHA512),
    CAHash.NAR_MD5: (CAMethod.NAR, HashAlgo.MD5),
    CAHash.TEXT_SHA256: (CAMethod.TEXT, HashAlgo.SHA256),
    CAHash.FLAT_SHA1: (CAMethod.FLAT, HashAlgo.SHA1),
    CAHash.FLAT_MD5: (CAMethod.FLAT, HashAlgo.MD5),
    CAHash.FLAT_SHA256: (CAMethod.FLAT, HashAlgo.SHA256),
    CAHash.FLAT_SHA512: (CAMethod.FLAT, HashAlgo.SHA512),
}
_TO_PROTO = {v: k for k, v in _BY_PROTO.items()}


class ContentAddress(Value, namedtuple("ContentAddress", "method hash")):
    __slots__ = ()
    method: CAMethod
    hash: NixHash

    def __new__(cls, method: CAMethod, hash: NixHash) -> ContentAddress:
        if method is CAMethod.TEXT and hash.algo is not HashAlgo.SHA256:
            raise ValidationError(f"text content addresses are sha256, not {hash.algo.value}")
        return tuple.__new__(cls, (method, hash))

    @classmethod
    def parse(cls, text: str) -> ContentAddress:
        """`text:sha256:<h>`, `fixed:r:<algo>:<h>` or `fixed:<algo>:<h>`."""
        kind, _, rest = text.partition(":")
        if kind == "text":
            return cls(CAMethod.TEXT, NixHash.parse(rest))
        if kind == "fixed":
            if rest.startswith("r:"):
                return cls(CAMethod.NAR, NixHash.parse(rest[2:]))
            return cls(CAMethod.FLAT, NixHash.parse(rest))
        raise ValidationError(f"unknown content address {text[:80]!r}")

    def render(self) -> str:
        prefix = {CAMethod.TEXT: "text:", CAMethod.NAR: "fixed:r:", CAMethod.FLAT: "fixed:"}[self.method]
        return prefix + self.hash.nix32()

    def __str__(self) -> str:
        return self.render()

    @property
    def proto_hash_type(self) -> CAHash:
        return _TO_PROTO[self.method, self.hash.algo]

    @classmethod
    def from_proto(cls, hash_type: int, digest: bytes) -> ContentAddress:
        try:
            method, algo = _BY_PROTO[CAHash(hash_type)]
        except ValueError:
            raise ValidationError(f"unknown CA hash type {hash_type}") from None
        return cls(method, NixHash(algo, digest))

    def store_path(self, name: str, references: Iterable[StorePath] = (),
                   self_reference: bool = False) -> StorePath:
        """The store path this content address gives an object called `name`."""
        if self.method is CAMethod.TEXT:
            if self_reference:
                raise ValidationError("a text path cannot refer to itself")
            return make_text_path(name, self.hash.digest, references)
        return make_fixed_output_path(name, self.hash, self.method is CAMethod.NAR,
                                      references, self_reference)
