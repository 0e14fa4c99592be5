"""NixHash: the text forms Nix accepts for a hash, and the two it writes."""

from __future__ import annotations

import base64
import hashlib

import pytest

from castore.errors import ValidationError
from store import nixbase32
from store.nixhash import HashAlgo, NixHash

DIGEST = hashlib.sha256(b"Hello World!").digest()


@pytest.mark.parametrize("text", [
    "sha256:" + DIGEST.hex(),
    "sha256:" + DIGEST.hex().upper(),
    "sha256:" + nixbase32.encode(DIGEST),
    "sha256:" + base64.b64encode(DIGEST).decode(),
    "sha256-" + base64.b64encode(DIGEST).decode(),
])
def test_every_encoding_parses_to_the_same_hash(text):
    assert NixHash.parse(text) == NixHash(HashAlgo.SHA256, DIGEST)


@pytest.mark.parametrize("algo", list(HashAlgo))
def test_renders_nix32_and_base16_for_every_algorithm(algo):
    h = NixHash.of(algo, b"x")
    assert h.nix32() == f"{algo.value}:{nixbase32.encode(h.digest)}" == str(h)
    assert h.base16() == f"{algo.value}:{hashlib.new(algo.value, b'x').hexdigest()}"
    assert NixHash.parse(h.nix32()) == NixHash.parse(h.base16()) == h


@pytest.mark.parametrize("text, why", [
    ("sha256:" + DIGEST.hex()[:-2], "not 32 bytes"),
    ("sha256:" + "g" * 64, "not 32 bytes"),
    ("sha256:" + " " * 64, "not 32 bytes"),
    ("sha1:" + DIGEST.hex(), "not 20 bytes"),
    ("blake3:" + DIGEST.hex(), "unknown hash algorithm"),
    (DIGEST.hex(), "prefix"),
    ("sha256-" + "!" * 44, "base64"),
])
def test_malformed_hashes_are_rejected(text, why):
    with pytest.raises(ValidationError, match=why):
        NixHash.parse(text)


def test_digest_length_is_checked_at_construction():
    with pytest.raises(ValidationError):
        NixHash(HashAlgo.MD5, DIGEST)
