"""Narinfo documents (SPEC 5): parsed into a validated value, rendered in Nix's key order.

Unknown keys are kept, each anchored after the known key it followed, so a narinfo
written by Nix (canonical order and encodings) renders back byte for byte.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Callable, TypeVar

from castore.errors import ValidationError
from store import nixbase32
from store.decimal import parse_u64
from store.contentaddress import ContentAddress
from store.errors import NarinfoError
from store.nixhash import HashAlgo, NixHash
from store.signing import Signature, fingerprint
from store.storepath import StorePath

KEY_ORDER = ("StorePath", "URL", "Compression", "FileHash", "FileSize", "NarHash", "NarSize",
             "References", "Deriver", "System", "Sig", "CA")
REQUIRED_KEYS = ("StorePath", "URL", "NarHash", "NarSize")
DEFAULT_COMPRESSION = "bzip2"  # what a narinfo without a Compression line means
_KEY = re.compile(r"[A-Za-z0-9_.-]+")
T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class UnknownField:
    """A line whose key this module does not know; `after` is the known key it followed (None: first)."""

    after: str | None
    key: str
    value: str

    def __post_init__(self) -> None:
        if not _KEY.fullmatch(self.key) or self.key in KEY_ORDER:
            raise ValidationError(f"invalid unknown narinfo key {self.key!r}")
        if self.after is not None and self.after not in KEY_ORDER:
            raise ValidationError(f"unknown field anchored after unknown key {self.after!r}")
        _check_line_value(self.key, self.value)


@dataclass(frozen=True, slots=True)
class NarInfo:
    store_path: StorePath
    url: str
    nar_hash: bytes  # sha256 of the NAR
    nar_size: int
    compression: str | None = None  # None: no Compression line, which means bzip2
    file_hash: NixHash | None = None
    file_size: int | None = None
    references: tuple[StorePath, ...] = ()
    deriver: StorePath | None = None
    system: str | None = None
    signatures: tuple[Signature, ...] = ()
    ca: ContentAddress | None = None
    unknown: tuple[UnknownField, ...] = ()

    def __post_init__(self) -> None:
        for name in ("references", "signatures", "unknown"):
            object.__setattr__(self, name, tuple(getattr(self, name)))
        if len(self.nar_hash) != 32:
            raise ValidationError(f"NarHash must be 32 bytes of sha256, got {len(self.nar_hash)}")
        if self.nar_size <= 0:
            raise ValidationError("NarSize must be positive")
        if self.file_size is not None and self.file_size < 0:
            raise ValidationError("FileSize must not be negative")
        if not self.url:
            raise ValidationError("URL must not be empty")
        for key, value in (("URL", self.url), ("Compression", self.compression), ("System", self.system)):
            if value is not None:
                _check_line_value(key, value)

    @property
    def effective_compression(self) -> str:
        return DEFAULT_COMPRESSION if self.compression is None else self.compression

    def fingerprint(self) -> bytes:
        """What signatures cover (SPEC 5, Signatures)."""
        return fingerprint(self.store_path, self.nar_hash, self.nar_size, self.references)

    @classmethod
    def parse(cls, text: str | bytes) -> NarInfo:
        try:
            if isinstance(text, bytes):
                text = text.decode("utf-8")
        except UnicodeDecodeError as e:
            raise NarinfoError(f"narinfo is not UTF-8: {e}") from e
        single, sigs, unknown = _split_lines(text)
        missing = [k for k in REQUIRED_KEYS if k not in single]
        if missing:
            raise NarinfoError(f"narinfo lacks required field(s) {', '.join(missing)}")

        def optional(key: str, convert: Callable[[str], T]) -> T | None:
            return None if key not in single else _convert(key, convert, single[key])

        try:
            return cls(
                store_path=_convert("StorePath", StorePath.parse, single["StorePath"]),
                url=single["URL"],
                nar_hash=_convert("NarHash", _parse_nar_hash, single["NarHash"]),
                nar_size=_convert("NarSize", _parse_uint, single["NarSize"]),
                compression=single.get("Compression"),
                file_hash=optional("FileHash", NixHash.parse),
                file_size=optional("FileSize", _parse_uint),
                references=optional("References", _parse_references) or (),
                deriver=optional("Deriver", StorePath.from_basename),
                system=single.get("System"),
                signatures=tuple(_convert("Sig", Signature.parse, s) for s in sigs),
                ca=optional("CA", ContentAddress.parse),
                unknown=tuple(unknown),
            )
        except NarinfoError:
            raise
        except ValidationError as e:
            raise NarinfoError(f"invalid narinfo: {e}") from e

    def render(self) -> str:
        values: dict[str, list[str]] = {
            "StorePath": [self.store_path.absolute],
            "URL": [self.url],
            "Compression": _optional(self.compression),
            "FileHash": _optional(self.file_hash and self.file_hash.nix32()),
            "FileSize": _optional(self.file_size),
            "NarHash": [f"sha256:{nixbase32.encode(self.nar_hash)}"],
            "NarSize": [str(self.nar_size)],
            "References": [" ".join(r.basename for r in self.references)],
            "Deriver": _optional(self.deriver and self.deriver.basename),
            "System": _optional(self.system),
            "Sig": [str(s) for s in self.signatures],
            "CA": _optional(self.ca and self.ca.render()),
        }
        lines = [f"{u.key}: {u.value}\n" for u in self.unknown if u.after is None]
        for key in KEY_ORDER:
            lines.extend(f"{key}: {v}\n" for v in values[key])
            lines.extend(f"{u.key}: {u.value}\n" for u in self.unknown if u.after == key)
        return "".join(lines)


@dataclass(frozen=True, slots=True)
class NarinfoExtras:
    """The narinfo fields PathInfo's protobuf form has no place for (System and unknown keys).

    A PathInfo carries them in process and stores that keep narinfo records keep them beside
    it, so an archived or read-through narinfo is served again with every line it had; the
    gRPC protocol stays as Tvix defines it (it drops them).
    """

    system: str | None = None
    unknown: tuple[UnknownField, ...] = ()

    @classmethod
    def of(cls, narinfo: NarInfo) -> NarinfoExtras | None:
        """What of `narinfo` PathInfo cannot hold; None when there is nothing."""
        if narinfo.system is None and not narinfo.unknown:
            return None
        return cls(narinfo.system, narinfo.unknown)

    def encode(self) -> bytes:
        import json

        return json.dumps({"system": self.system,
                           "unknown": [[u.after, u.key, u.value] for u in self.unknown]}).encode()

    @classmethod
    def decode(cls, data: bytes) -> NarinfoExtras:
        import json

        try:
            raw = json.loads(data)
            return cls(raw["system"], tuple(UnknownField(*field) for field in raw["unknown"]))
        except (ValueError, KeyError, TypeError) as e:
            raise ValidationError(f"malformed narinfo extras record: {e}") from e


def _split_lines(text: str) -> tuple[dict[str, str], list[str], list[UnknownField]]:
    """`Key: value\\n` lines into single-valued known keys, Sig values and anchored unknown fields."""
    if not text.endswith("\n"):
        raise NarinfoError("narinfo must end with a newline")
    single: dict[str, str] = {}
    sigs: list[str] = []
    unknown: list[UnknownField] = []
    last_known: str | None = None
    for number, line in enumerate(text[:-1].split("\n"), 1):
        key, sep, value = line.partition(": ")
        if not sep:
            raise NarinfoError(f"narinfo line {number} is not 'Key: value': {line[:80]!r}")
        if key == "Sig":
            sigs.append(value)
        elif key in KEY_ORDER:
            if key in single:
                raise NarinfoError(f"narinfo repeats {key}")
            single[key] = value
        else:
            try:
                unknown.append(UnknownField(last_known, key, value))
            except ValidationError as e:
                raise NarinfoError(f"narinfo line {number}: {e}") from e
            continue
        last_known = key
    return single, sigs, unknown


def _convert(key: str, convert: Callable[[str], T], value: str) -> T:
    try:
        return convert(value)
    except ValidationError as e:
        raise NarinfoError(f"narinfo {key}: {e}") from e


def _check_line_value(key: str, value: str) -> None:
    if "\n" in value or "\r" in value:
        raise ValidationError(f"narinfo {key} value contains a line break")


def _optional(value: object) -> list[str]:
    return [] if value is None else [str(value)]


def _parse_uint(text: str) -> int:
    return parse_u64(text, "value")


def _parse_nar_hash(text: str) -> bytes:
    h = NixHash.parse(text)
    if h.algo is not HashAlgo.SHA256:
        raise ValidationError(f"NarHash must be sha256, got {h.algo.value}")
    return h.digest


def _parse_references(text: str) -> tuple[StorePath, ...]:
    return tuple(StorePath.from_basename(b) for b in text.split(" ")) if text else ()
