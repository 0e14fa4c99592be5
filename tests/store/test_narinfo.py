"""Narinfo: parse and render, byte-identical for all 978 archived cache.nixos.org narinfos."""

from __future__ import annotations

import base64
import dataclasses
import hashlib

import pytest

from castore.errors import ValidationError
from store import nixbase32
from store.contentaddress import CAMethod
from store.errors import NarinfoError
from store.narinfo import NarInfo, UnknownField
from store.storepath import StorePath

HASH = hashlib.sha256(b"nar").digest()
BASIC = (
    "StorePath: /nix/store/00bgd045z0d4icpbc2yyz4gx48ak44la-hello-2.12\n"
    "URL: nar/1w1fff338fvdw53sqgamddn1b2xgds473pv6y13gizdbqjv4i5p3.nar.xz\n"
    "Compression: xz\n"
    "FileHash: sha256:1w1fff338fvdw53sqgamddn1b2xgds473pv6y13gizdbqjv4i5p3\n"
    "FileSize: 50088\n"
    f"NarHash: sha256:{nixbase32.encode(HASH)}\n"
    "NarSize: 226488\n"
    "References: 00bgd045z0d4icpbc2yyz4gx48ak44la-hello-2.12 0c5b8vw40dy178xlpddw65q9gf1h2186-glibc-2.35\n"
    "Deriver: 0c5b8vw40dy178xlpddw65q9gf1h2186-hello-2.12.drv\n"
    "System: x86_64-linux\n"
    f"Sig: a-1:{base64.b64encode(bytes(64)).decode()}\n"
    f"Sig: b-1:{base64.b64encode(b'b' * 64).decode()}\n"
    "CA: fixed:r:sha256:1w1fff338fvdw53sqgamddn1b2xgds473pv6y13gizdbqjv4i5p3\n"
)


def test_all_archived_narinfos_render_back_byte_identically(narinfo_texts):
    for text in narinfo_texts:
        assert NarInfo.parse(text).render() == text


def test_fields_are_typed():
    info = NarInfo.parse(BASIC)
    assert info.store_path == StorePath.parse("/nix/store/00bgd045z0d4icpbc2yyz4gx48ak44la-hello-2.12")
    assert info.nar_hash == HASH and info.nar_size == 226488
    assert info.compression == info.effective_compression == "xz"
    assert info.file_hash.nix32() == "sha256:1w1fff338fvdw53sqgamddn1b2xgds473pv6y13gizdbqjv4i5p3"
    assert info.file_size == 50088
    assert [r.name for r in info.references] == ["hello-2.12", "glibc-2.35"]
    assert info.deriver.name == "hello-2.12.drv" and info.system == "x86_64-linux"
    assert [s.key_name for s in info.signatures] == ["a-1", "b-1"]
    assert info.ca.method is CAMethod.NAR
    assert info.render() == BASIC


def test_vector_narinfo(vectors):
    text = vectors["narinfo"]["text"]
    info = NarInfo.parse(text)
    assert info.references == () and info.compression == "none"
    assert info.url.startswith("nar/tvix-castore/")
    assert info.render() == text


def test_hex_nar_hash_is_accepted_and_rendered_as_nixbase32():
    info = NarInfo.parse(BASIC.replace(f"sha256:{nixbase32.encode(HASH)}", f"sha256:{HASH.hex()}"))
    assert info.nar_hash == HASH and info.render() == BASIC


def test_missing_compression_means_bzip2_and_stays_missing():
    text = BASIC.replace("Compression: xz\n", "")
    info = NarInfo.parse(text)
    assert info.compression is None and info.effective_compression == "bzip2"
    assert info.render() == text


def test_unknown_keys_keep_their_place_and_order():
    text = "X-First: 1\n" + BASIC.replace("NarSize: 226488\n", "NarSize: 226488\nX-Mid: a: b\nX-Mid2: \n")
    text += "X-Last: z\n"
    info = NarInfo.parse(text)
    assert [(u.after, u.key, u.value) for u in info.unknown] == [
        (None, "X-First", "1"), ("NarSize", "X-Mid", "a: b"), ("NarSize", "X-Mid2", ""), ("CA", "X-Last", "z")]
    assert info.render() == text


def test_unknown_fields_survive_when_their_anchor_goes():
    info = NarInfo.parse(BASIC.replace("System: x86_64-linux\n", "System: x86_64-linux\nX: 1\n"))
    assert "X: 1\n" in dataclasses.replace(info, system=None).render()


def test_new_narinfo_renders_in_nix_key_order():
    info = NarInfo(StorePath(bytes(20), "x"), "nar/abc.nar", HASH, 96, compression="none")
    assert info.render() == (
        "StorePath: /nix/store/00000000000000000000000000000000-x\nURL: nar/abc.nar\nCompression: none\n"
        f"NarHash: sha256:{nixbase32.encode(HASH)}\nNarSize: 96\nReferences: \n")


@pytest.mark.parametrize("change, why", [
    (lambda t: t.replace("StorePath: /nix/store/00bgd045z0d4icpbc2yyz4gx48ak44la-hello-2.12\n", ""), "StorePath"),
    (lambda t: t.replace("URL: nar/1w1fff338fvdw53sqgamddn1b2xgds473pv6y13gizdbqjv4i5p3.nar.xz\n", ""), "URL"),
    (lambda t: t.replace("NarSize: 226488\n", ""), "NarSize"),
    (lambda t: t.replace("NarSize: 226488\n", "NarSize: 0\n"), "NarSize must be positive"),
    (lambda t: t.replace("NarSize: 226488\n", "NarSize: -5\n"), "unsigned"),
    (lambda t: t.replace("NarSize: 226488\n", "NarSize: 1_000\n"), "unsigned"),
    (lambda t: t.replace(f"NarHash: sha256:{nixbase32.encode(HASH)}\n", ""), "NarHash"),
    (lambda t: t.replace(f"sha256:{nixbase32.encode(HASH)}", "sha1:" + "0" * 32), "NarHash must be sha256"),
    (lambda t: t.replace("FileSize: 50088", "FileSize: big"), "FileSize"),
    (lambda t: t.replace("NarSize: 226488\n", f"NarSize: {'9' * 5000}\n"), "NarSize"),  # past int()'s limit
    (lambda t: t.replace("FileSize: 50088", f"FileSize: {'9' * 5000}"), "FileSize"),
    (lambda t: t.replace("NarSize: 226488\n", "NarSize: 18446744073709551616\n"), "NarSize"),  # 2**64
    (lambda t: t.replace("NarSize: 226488\n", "NarSize: \u0662\u0662\n"), "NarSize"),  # Arabic-Indic digits
    (lambda t: t.replace("Sig: a-1:", "Sig: a-1:\u00e9"), "Sig"),
    (lambda t: t.replace(f"sha256:{nixbase32.encode(HASH)}", "sha256-\u00e9" + "A" * 43), "NarHash"),
    (lambda t: t.replace("StorePath: /nix/store/", "StorePath: /usr/store/"), "StorePath"),
    (lambda t: t.replace("References: 00bgd", "References:  00bgd"), "References"),
    (lambda t: t.replace("Deriver: 0c5b", "Deriver: /nix/store/0c5b"), "Deriver"),
    (lambda t: t.replace("Sig: a-1:", "Sig: a-1:AAAA"), "Sig"),
    (lambda t: t.replace("CA: fixed:r:", "CA: fixed:q:"), "CA"),
    (lambda t: t + "URL: again\n", "repeats URL"),
    (lambda t: t + "NoSpace:x\n", "not 'Key: value'"),
    (lambda t: t + "\n", "not 'Key: value'"),
    (lambda t: t[:-1], "newline"),
    (lambda t: t + "Bad Key: x\n", "key"),
    (lambda t: t.encode("utf-8") + b"X: \xff\n", "UTF-8"),
])
def test_malformed_narinfos_are_rejected(change, why):
    with pytest.raises(NarinfoError, match=why):
        NarInfo.parse(change(BASIC))


def test_values_cannot_smuggle_lines():
    with pytest.raises(ValidationError):
        NarInfo(StorePath(bytes(20), "x"), "nar/a\nSig: evil", HASH, 1)
    with pytest.raises(ValidationError):
        UnknownField(None, "X", "a\nb")
    with pytest.raises(ValidationError):
        UnknownField(None, "NarSize", "1")
