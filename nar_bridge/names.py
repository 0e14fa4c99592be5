"""The names in binary cache URLs, parsed into validated values at the edge.

- `<hash>.narinfo`, `<hash>.ls`: the 32 nixbase32 characters of a store path digest;
- `nar/<sha256>.nar[.xz|.zst|.bz2|.br]`: a NAR file named by the sha256 of its bytes
  (FileHash; for an uncompressed NAR, FileHash is NarHash, which makes
  `nar/<NarHash>.nar` the stable URL this bridge serves);
- `nar/tvix-castore/<node>?narsize=N` (and `snix-castore`): a castore root node as
  unpadded base64url, rendered statelessly.
"""

from __future__ import annotations

from dataclasses import dataclass

from castore.api import node_from_text
from castore.errors import ValidationError
from castore.nodes import Node
from store import nixbase32
from store.decimal import parse_u64
from store.storepath import DIGEST_SIZE, ENCODED_DIGEST_LENGTH
from store.compression import EXTENSIONS

NAR_SUFFIX = ".nar"
SHA256_NIX32 = nixbase32.encoded_length(32)
CASTORE_PREFIXES = ("tvix-castore", "snix-castore")
_EXTENSION_OF = {compression: ext for ext, compression in EXTENSIONS.items()}


def parse_hash_part(text: str) -> bytes:
    """The 20-byte store path digest of a `<hash>.narinfo` name."""
    if len(text) != ENCODED_DIGEST_LENGTH:
        raise ValidationError(f"not a store path hash: {text[:80]!r}")
    digest = nixbase32.decode(text)
    assert len(digest) == DIGEST_SIZE
    return digest


@dataclass(frozen=True, slots=True)
class NarFile:
    """`nar/<file sha256>.nar<ext>`: a NAR file as Nix names it in a binary cache."""

    file_sha256: bytes
    compression: str

    @classmethod
    def parse(cls, name: str) -> NarFile:
        """`<52 nixbase32>.nar<ext>`, without the `nar/` directory."""
        digest, dot, rest = name.partition(".")
        if len(digest) != SHA256_NIX32 or not dot or not ("." + rest).startswith(NAR_SUFFIX):
            raise ValidationError(f"not a NAR file name: {name[:120]!r}")
        ext = ("." + rest)[len(NAR_SUFFIX):]
        if ext not in EXTENSIONS:
            raise ValidationError(f"unsupported NAR file extension {ext!r} "
                                  f"(supported: .nar{', .nar'.join(e for e in EXTENSIONS if e)})")
        return cls(nixbase32.decode(digest), EXTENSIONS[ext])

    @classmethod
    def from_url(cls, url: str) -> NarFile:
        """The narinfo URL form, `nar/<name>`."""
        if not url.startswith("nar/"):
            raise ValidationError(f"narinfo URL {url[:120]!r} is not a NAR file uploaded here (nar/...)")
        return cls.parse(url[len("nar/"):])

    @property
    def name(self) -> str:
        return f"{nixbase32.encode(self.file_sha256)}{NAR_SUFFIX}{_EXTENSION_OF[self.compression]}"

    @property
    def url(self) -> str:
        return f"nar/{self.name}"


def parse_castore_nar(node_text: str, narsize: str | None) -> tuple[Node, int]:
    """The root node (empty name) and NAR size of a `nar/tvix-castore/...` URL."""
    node = node_from_text(node_text)
    if node.name:
        raise ValidationError("a NAR URL's root node must have an empty name")
    size = 0 if narsize is None else parse_u64(narsize, "?narsize=")
    if size <= 0:
        raise ValidationError("a castore NAR URL needs ?narsize=<positive NAR size>")
    return node, size
