"""Realisation values: their checks, and signatures Nix accepts, against the vectors of Nix's own tests
(NixOS/nix src/libstore-tests/data/realisation/: simple, with-signature; key `testSecretKey`)."""

from __future__ import annotations

import base64
import json

import pytest

from castore.errors import ValidationError
from store.records.realisations import built_id, check_built, check_hashed, hashed_id, with_signatures
from store.signing import SecretKey, Signature

NIX_TEST_KEY = SecretKey.parse("test-key:tU7tTvLcScf8pmz/eTV0BEtLmRsPpZfKaRcd0nCN+pysBZPHSeg61/u2oc7mIOewfuAY1V1B"
                               "iX32homTaDJ2Jw==")
DRV = "g1w7hy3qg1w7hy3qg1w7hy3qg1w7hy3q-bar.drv"
VECTORS = [  # (outPath, signatures already there, the signature Nix's test makes)
    ("g1w7hy3qg1w7hy3qg1w7hy3qg1w7hy3q-foo", [],
     "WsjxK4/EI74COtzMDI+VCjQU9O4FydK0+YeY1CE5hUevogd+T+CPvNXza7oog3GTMS+ZlBwsC2S3ppwusKnJDg=="),
    ("g1w7hy3qg1w7hy3qg1w7hy3qg1w7hy3q-foo.drv", [{"keyName": "asdf", "sig": base64.b64encode(bytes(64)).decode()}],
     "ZE30UrOh26/EYvUaczjJtz6c4WcRYke6IEhDNN5TiFRF6Uu+H8lHofponlhfZxDDrCUlfstS/vtv3Xm2F6M/AA=="),
]


@pytest.mark.parametrize("out_path, existing, expected", VECTORS)
def test_build_trace_signatures_are_the_ones_nix_makes(out_path, existing, expected):
    body = json.dumps({"outPath": out_path, "signatures": existing}).encode()
    check_built(body)
    signed = json.loads(with_signatures(built_id(DRV, "foo"), body, [NIX_TEST_KEY]))
    assert signed == {"outPath": out_path, "signatures": [*existing, {"keyName": "test-key", "sig": expected}]}


def test_old_realisations_are_signed_over_nix_2_8s_fingerprint_and_the_later_one():
    key = hashed_id("sha256:" + "ab" * 32 + "!out")
    dependent = "sha256:" + "cd" * 32 + "!out"
    value = {"dependentRealisations": {dependent: "g1w7hy3qg1w7hy3qg1w7hy3qg1w7hy3q-dep"}, "id": key,
             "outPath": "g1w7hy3qg1w7hy3qg1w7hy3qg1w7hy3q-foo", "signatures": []}
    body = json.dumps(value).encode()
    check_hashed(key, body)
    signatures = [Signature.parse(s) for s in json.loads(with_signatures(key, body, [NIX_TEST_KEY]))["signatures"]]
    public = NIX_TEST_KEY.public_key()
    nix_2_8 = ('{"dependentRealisations":{"%s":"g1w7hy3qg1w7hy3qg1w7hy3qg1w7hy3q-dep"},"id":"%s",'
               '"outPath":"g1w7hy3qg1w7hy3qg1w7hy3qg1w7hy3q-foo"}' % (dependent, key))
    later = '{"dependentRealisations":{},"id":"%s","outPath":"g1w7hy3qg1w7hy3qg1w7hy3qg1w7hy3q-foo"}' % key
    assert [public.verify(m.encode(), s) for m in (nix_2_8, later) for s in signatures] == [True, False, False, True]


@pytest.mark.parametrize("text", ["sha256:" + "AB" * 32 + "!out", "sha1:" + "ab" * 20 + "!out", "sha256:ab!out",
                                  "sha256:" + "ab" * 32, "sha256:" + "ab" * 32 + "!", "sha256:" + "ab" * 32 + "!a b",
                                  "sha256:" + "ab" * 32 + "!" + "o" * 200])
def test_bad_derivation_output_ids_are_refused(text):
    with pytest.raises(ValidationError):
        hashed_id(text)


def test_absolute_output_paths_are_refused_as_nix_refuses_them():
    with pytest.raises(ValidationError, match="invalid store path basename"):
        check_built(json.dumps({"outPath": "/nix/store/g1w7hy3qg1w7hy3qg1w7hy3qg1w7hy3q-foo"}).encode())
