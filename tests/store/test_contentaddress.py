"""Content addresses: narinfo CA text, the PathInfo CA.Hash numbers, and the store paths they imply."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

from castore.errors import ValidationError
from store.contentaddress import CAHash, CAMethod, ContentAddress
from store.narinfo import NarInfo
from store.nixhash import HashAlgo, NixHash
from store.storepath import StorePath
from tests.store.nixtool import interop, nix

SHA256 = NixHash.of(HashAlgo.SHA256, b"x")

# SPEC 3: tvix.store.v1 NARInfo.CA.Hash
SPEC_NUMBERS = {
    (CAMethod.NAR, HashAlgo.SHA256): 0, (CAMethod.NAR, HashAlgo.SHA1): 1,
    (CAMethod.NAR, HashAlgo.SHA512): 2, (CAMethod.NAR, HashAlgo.MD5): 3,
    (CAMethod.TEXT, HashAlgo.SHA256): 4,
    (CAMethod.FLAT, HashAlgo.SHA1): 5, (CAMethod.FLAT, HashAlgo.MD5): 6,
    (CAMethod.FLAT, HashAlgo.SHA256): 7, (CAMethod.FLAT, HashAlgo.SHA512): 8,
}


@pytest.mark.parametrize("text, method", [
    (f"fixed:r:{SHA256.nix32()}", CAMethod.NAR),
    (f"fixed:{SHA256.nix32()}", CAMethod.FLAT),
    (f"text:{SHA256.nix32()}", CAMethod.TEXT),
])
def test_parse_and_render(text, method):
    ca = ContentAddress.parse(text)
    assert ca == ContentAddress(method, SHA256)
    assert ca.render() == str(ca) == text


def test_hex_hash_is_accepted_and_rendered_as_nixbase32():
    assert ContentAddress.parse(f"fixed:r:{SHA256.base16()}").render() == f"fixed:r:{SHA256.nix32()}"


@pytest.mark.parametrize("method, algo, number", [(*k, v) for k, v in SPEC_NUMBERS.items()])
def test_proto_hash_type_numbers_match_the_spec(method, algo, number):
    ca = ContentAddress(method, NixHash.of(algo, b"x"))
    assert ca.proto_hash_type == number == CAHash(number)
    assert ContentAddress.from_proto(number, ca.hash.digest) == ca


@pytest.mark.parametrize("text", [
    "text:sha1:" + hashlib.sha1(b"x").hexdigest(),
    "fixed:r:sha256:tooshort",
    "fixed:sha3:" + "0" * 64,
    "source:" + SHA256.nix32(),
    "",
])
def test_invalid_content_addresses_are_rejected(text):
    with pytest.raises(ValidationError):
        ContentAddress.parse(text)


def test_from_proto_checks_type_and_digest_length():
    with pytest.raises(ValidationError):
        ContentAddress.from_proto(9, bytes(32))
    with pytest.raises(ValidationError):
        ContentAddress.from_proto(CAHash.NAR_SHA1, bytes(32))


def test_text_content_address_cannot_refer_to_itself():
    with pytest.raises(ValidationError):
        ContentAddress(CAMethod.TEXT, SHA256).store_path("x", self_reference=True)


def test_every_content_addressed_narinfo_names_the_path_its_ca_implies(narinfo_texts):
    infos = [NarInfo.parse(t) for t in narinfo_texts]
    with_ca = [i for i in infos if i.ca is not None]
    assert {i.ca.method for i in with_ca} == set(CAMethod)
    for info in with_ca:
        refs = [r for r in info.references if r != info.store_path]
        self_ref = len(refs) != len(info.references)
        assert info.ca.store_path(info.store_path.name, refs, self_ref) == info.store_path


@interop
def test_self_reference_equals_nix_make_content_addressed(tmp_path: Path):
    """Compared with `nix store make-content-addressed` of a build output that refers to itself and a dependency."""
    expr = tmp_path / "selfref.nix"
    expr.write_text('''
      let dep = builtins.toFile "cairn-dep" "dependency"; in
      derivation { name = "cairn-selfref"; system = builtins.currentSystem; builder = "/bin/sh";
        args = ["-c" "/bin/mkdir $out; echo $out > $out/self; echo ${dep} > $out/dep"]; }
    ''')
    built = nix("nix-build", "--option", "sandbox", "false", "--no-out-link", str(expr)).decode().strip()
    rewritten = json.loads(nix("nix", "store", "make-content-addressed", "--json", built))["rewrites"][built]
    (info,) = json.loads(nix("nix", "path-info", "--json", rewritten))
    path = StorePath.parse(info["path"])
    refs = [StorePath.parse(r) for r in info["references"]]
    assert path in refs and len(refs) == 2
    ca = ContentAddress.parse(info["ca"])
    assert ca.method is CAMethod.NAR
    assert ca.store_path(path.name, [r for r in refs if r != path], self_reference=True) == path
