"""Signatures: the fingerprint, ed25519 in Nix's key formats, the vectors, the archive, and `nix store sign`."""

from __future__ import annotations

import dataclasses
import json
import os
from pathlib import Path

import pytest

from castore.errors import ValidationError
from store.narinfo import NarInfo
from store.nixhash import NixHash
from store.signing import PublicKey, SecretKey, Signature, fingerprint, verify_narinfo
from store.storepath import StorePath
from tests.store.conftest import CACHE_NIXOS_ORG_KEY
from tests.store.nixtool import interop, nix

CACHE_KEY = PublicKey.parse(CACHE_NIXOS_ORG_KEY)


def parse_fingerprint(text: str) -> tuple[StorePath, bytes, int, list[StorePath]]:
    version, path, nar_hash, size, refs = text.split(";")
    assert version == "1"
    return (StorePath.parse(path), NixHash.parse(nar_hash).digest, int(size),
            [StorePath.parse(r) for r in refs.split(",")] if refs else [])


def test_fingerprint_vector(vectors):
    text = vectors["signatures"]["fingerprint"]
    assert fingerprint(*parse_fingerprint(text)) == text.encode()


def test_fingerprint_keeps_reference_order_and_rejects_size_zero():
    a, b = StorePath(bytes(20), "a"), StorePath(b"\1" * 20, "b")
    assert fingerprint(a, bytes(32), 1, [b, a]).endswith(f";{b},{a}".encode())
    with pytest.raises(ValidationError):
        fingerprint(a, bytes(32), 0, [])


def test_valid_vector_signatures_verify(vectors):
    message = vectors["signatures"]["fingerprint"].encode()
    for case in vectors["signatures"]["valid"]:
        assert PublicKey.parse(case["public_key"]).verify(message, Signature.parse(case["sig"]))


def test_invalid_vector_signatures_do_not_verify(vectors):
    message = vectors["signatures"]["fingerprint"].encode()
    for case in vectors["signatures"]["invalid"]:
        assert not PublicKey.parse(case["public_key"]).verify(message, Signature.parse(case["sig"])), case["why"]


def test_secret_key_vector_signs_as_expected(vectors):
    message = vectors["signatures"]["fingerprint"].encode()
    for case in vectors["signatures"]["secret_keys"]:
        secret = SecretKey.parse(case["secret"])
        assert str(secret) == case["secret"]
        assert str(secret.public_key()) == case["public"]
        sig = secret.sign(message)
        assert str(sig) == case["sig_over_fingerprint"]
        assert PublicKey.parse(case["public"]).verify(message, sig)


def test_generated_keys_sign_and_verify():
    secret = SecretKey.generate("cairn-test-1")
    sig = secret.sign(b"message")
    assert secret.public_key().verify(b"message", sig)
    assert not secret.public_key().verify(b"other message", sig)
    assert SecretKey.parse(str(secret) + "\n") == secret
    assert Signature.parse(str(sig)) == sig


@pytest.mark.parametrize("parse, text, why", [
    (PublicKey.parse, "no-colon", "not '<name>:<base64>'"),
    (PublicKey.parse, ":" + "A" * 43 + "=", "invalid key name"),
    (PublicKey.parse, "k:" + "A" * 42 + "==", "32 bytes"),
    (PublicKey.parse, "k:not base64!", "base64"),
    (Signature.parse, "k:" + "A" * 43 + "=", "64 bytes"),
    (SecretKey.parse, CACHE_NIXOS_ORG_KEY, "64 bytes"),
    (SecretKey.parse, "k:" + "A" * 86 + "==", "public half"),
])
def test_malformed_keys_and_signatures_are_rejected(parse, text, why):
    with pytest.raises(ValidationError, match=why):
        parse(text)


def test_all_archived_narinfos_verify_with_the_cache_key(narinfo_texts):
    for text in narinfo_texts:
        assert verify_narinfo(NarInfo.parse(text), [CACHE_KEY]), text.splitlines()[0]


def test_unsigned_or_untrusted_narinfos_do_not_verify(narinfo_texts):
    info = NarInfo.parse(narinfo_texts[0])
    assert not verify_narinfo(dataclasses.replace(info, signatures=()), [CACHE_KEY])
    assert not verify_narinfo(info, [SecretKey.generate("cache.nixos.org-1").public_key()])
    assert not verify_narinfo(info, [])


def altered(info: NarInfo) -> dict[str, NarInfo]:
    other = StorePath(bytes(20), "other")
    return {
        "NarHash": dataclasses.replace(info, nar_hash=bytes(32)),
        "NarSize": dataclasses.replace(info, nar_size=info.nar_size + 8),
        "StorePath": dataclasses.replace(info, store_path=other),
        "a reference added": dataclasses.replace(info, references=info.references + (other,)),
        "a reference changed": dataclasses.replace(info, references=(other,) + info.references[1:]),
    }


def test_altered_narinfos_fail_verification(narinfo_texts):
    infos = [NarInfo.parse(t) for t in narinfo_texts[:50]]
    assert any(i.references for i in infos)
    for info in infos:
        for what, changed in altered(info).items():
            if what == "a reference changed" and not info.references:
                continue
            assert not verify_narinfo(changed, [CACHE_KEY]), what


def test_unsigned_fields_can_change_and_signatures_stay_valid(narinfo_texts):
    info = NarInfo.parse(narinfo_texts[0])
    served = dataclasses.replace(info, url="nar/tvix-castore/abc?narsize=1", compression="none",
                                 file_hash=None, file_size=None)
    assert verify_narinfo(served, [CACHE_KEY])


@interop
def test_interoperates_with_nix_generated_keys_and_nix_store_sign(tmp_path: Path):
    """Compared with `nix key generate-secret`, `nix key convert-secret-to-public` and `nix store sign`."""
    secret_file = tmp_path / "secret"
    secret_file.write_bytes(nix("nix", "key", "generate-secret", "--key-name", "cairn-interop-1"))
    public_text = nix("nix", "key", "convert-secret-to-public", stdin=secret_file.read_bytes()).decode()
    secret, public = SecretKey.parse(secret_file.read_text()), PublicKey.parse(public_text)
    assert secret.public_key() == public

    out = nix("nix-instantiate", "--read-write-mode", "--eval", "--strict", "--json", "-E",
              f'let a = builtins.toFile "a" "{tmp_path} {os.urandom(8).hex()}"; in builtins.toFile "b" "uses ${{a}}"')
    path = json.loads(out)
    nix("nix", "store", "sign", "--key-file", str(secret_file), path)
    (info,) = json.loads(nix("nix", "path-info", "--json", "--sigs", path))
    message = fingerprint(StorePath.parse(info["path"]), NixHash.parse(info["narHash"]).digest,
                          info["narSize"], [StorePath.parse(r) for r in info["references"]])
    (nix_sig,) = [Signature.parse(s) for s in info["signatures"] if s.startswith("cairn-interop-1:")]
    assert public.verify(message, nix_sig)
    assert secret.sign(message) == nix_sig  # ed25519 is deterministic
