"""nixbase32: the vectors, strict decoding, and round trips."""

from __future__ import annotations

import pytest
from hypothesis import given, strategies as st

from castore.errors import ValidationError
from store import nixbase32


def test_vectors_encode_and_decode(vectors):
    for v in vectors["nixbase32"]:
        if "hex" in v:
            assert nixbase32.encode(bytes.fromhex(v["hex"])) == v["nixbase32"]
            assert nixbase32.decode(v["nixbase32"]) == bytes.fromhex(v["hex"])


def test_vector_invalid_strings_are_rejected(vectors):
    invalid = [s for v in vectors["nixbase32"] for s in v.get("invalid", [])]
    assert invalid
    for text in invalid:
        with pytest.raises(ValidationError):
            nixbase32.decode(text)


@pytest.mark.parametrize("text, why", [
    ("0e", "character"), ("0o", "character"), ("0t", "character"), ("0u", "character"),
    ("0Z", "character"), ("0-", "character"),
    ("0", "length"), ("000", "length"), ("0" * 33, "length"),
    ("z0", "leftover"),
])
def test_decode_rejects_with_a_reason(text, why):
    with pytest.raises(ValidationError, match=why):
        nixbase32.decode(text)


def test_lengths_follow_ceil_8n_over_5():
    assert [nixbase32.encoded_length(n) for n in (0, 1, 2, 20, 32, 64)] == [0, 2, 4, 32, 52, 103]
    assert nixbase32.encode(b"") == "" and nixbase32.decode("") == b""


@given(st.binary(max_size=80))
def test_round_trip(data):
    text = nixbase32.encode(data)
    assert len(text) == nixbase32.encoded_length(len(data))
    assert set(text) <= set(nixbase32.ALPHABET)
    assert nixbase32.decode(text) == data
