"""A real binary cache for read-through, archive and upload tests: `nix copy --to file://` of a
3-path closure, signed, xz-compressed; and narinfos that lie, re-signed so that only the lie is wrong."""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass
from pathlib import Path

from store.narinfo import NarInfo
from store.nixhash import HashAlgo, NixHash
from store.signing import SecretKey
from tests.store.nixtool import build_closure, new_key, nix


@dataclass
class SignedCache:
    dir: Path
    top: str  # a directory with references (mid and itself)
    paths: list[str]
    secret: SecretKey
    public_key: str

    def narinfo_file(self, store_path: str, root: Path | None = None) -> Path:
        return (root or self.dir) / f"{Path(store_path).name[:32]}.narinfo"

    def narinfo(self, store_path: str, root: Path | None = None) -> NarInfo:
        return NarInfo.parse(self.narinfo_file(store_path, root).read_bytes())


def signed_cache(work: Path, tag: str) -> SignedCache:
    """top -> mid -> dep, with a symlink and a self-reference, in `work/cache`."""
    top, paths = build_closure(work, f'''
        dep = sh "{tag}-dep" "echo dep-{os.getpid()} > $out";
        mid = sh "{tag}-mid" "/bin/mkdir $out; echo ${{dep}} > $out/dep; /bin/ln -s ${{dep}} $out/link";''',
        f'sh "{tag}-top" "/bin/mkdir -p $out/bin; echo ${{mid}} > $out/bin/mid; echo $out > $out/self"')
    assert len(paths) == 3
    secret, public = new_key(work, f"{tag}-{os.getpid()}")
    cache = work / "cache"
    nix("nix", "copy", "--to", f"file://{cache}?secret-key={secret}", top)
    return SignedCache(cache, top, paths, SecretKey.parse(secret.read_text()), public)


LIES = {
    "FileHash": lambda n: dataclasses.replace(n, file_hash=NixHash.of(HashAlgo.SHA256, b"not the file")),
    "NarHash": lambda n: dataclasses.replace(n, nar_hash=NixHash.of(HashAlgo.SHA256, b"not the NAR").digest),
    "NarSize": lambda n: dataclasses.replace(n, nar_size=n.nar_size + 8),
    "FileSize": lambda n: dataclasses.replace(n, file_size=(n.file_size or 0) + 1),
}
"""Each changes one field of a narinfo; the field's name is what a refusal must say."""


def lying(narinfo: NarInfo, field: str, key: SecretKey) -> NarInfo:
    """The narinfo with `field` lying, signed again by `key` (a signature covers NarHash and NarSize)."""
    lie = LIES[field](narinfo)
    return dataclasses.replace(lie, signatures=(key.sign(lie.fingerprint()),))
