"""Store paths: parsing and validation, and every content-address builder against vectors and C++ Nix."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import pytest

from castore.errors import ValidationError
from store.nar.writer import write_nar
from store.nixhash import HashAlgo, NixHash
from store.storepath import (StorePath, make_fixed_output_path, make_source_path, make_store_path,
                             make_text_path)
from tests.conftest import make_zoo
from tests.store.nixtool import interop, nix
from store.nar.fs import fs_events

HASH = "00bgd045z0d4icpbc2yyz4gx48ak44la"


def vector(items: list[dict], fragment: str) -> dict:
    (found,) = [v for v in items if fragment in v["what"]]
    return found


def nar_hash(path: Path, algo: str = "sha256") -> bytes:
    h = hashlib.new(algo)
    for piece in write_nar(fs_events(path)):
        h.update(piece)
    return h.digest()


# --- the value -----------------------------------------------------------------

def test_parse_and_render():
    p = StorePath.parse(f"/nix/store/{HASH}-firefox-33.1")
    assert p.name == "firefox-33.1"
    assert p.digest == bytes.fromhex("8a12321522fd91efbd60ebb2481af88580f61600")
    assert p.hash_part == HASH
    assert p.basename == f"{HASH}-firefox-33.1"
    assert p.absolute == str(p) == f"/nix/store/{HASH}-firefox-33.1"
    assert StorePath.from_basename(p.basename) == p


def test_leading_dot_name_is_valid(vectors):
    basename = vector(vectors["store_paths"], "leading dot")["basename"]
    assert StorePath.from_basename(basename).name == ".gitignore"


def test_name_of_211_characters_is_the_longest():
    assert StorePath.from_basename(f"{HASH}-{'a' * 211}").name == "a" * 211
    with pytest.raises(ValidationError):
        StorePath.from_basename(f"{HASH}-{'a' * 212}")


@pytest.mark.parametrize("text", [
    f"/nix/store/{HASH}-",  # empty name
    f"/nix/store/{HASH}",  # no name at all
    f"/nix/store/{HASH}-a b",  # space
    f"/nix/store/{HASH}-a/b",  # a path below a store path
    f"/nix/store/{HASH}-ü",  # non-ASCII
    f"/nix/store/{HASH}-a:b",
    f"/nix/store/{HASH[:-1]}-name",  # short hash
    f"/nix/store/{HASH[:-1]}e-name",  # 'e' is not nixbase32
    f"/nix/store/{HASH}_name",
    f"/nix/stor/{HASH}-name",
    f"nix/store/{HASH}-name",
    f"/nix/store//{HASH}-name",
])
def test_invalid_paths_are_rejected(text):
    with pytest.raises(ValidationError):
        StorePath.parse(text)


def test_construction_checks_digest_length():
    with pytest.raises(ValidationError):
        StorePath(bytes(19), "x")


def test_paths_order_by_basename_like_nix():
    # byte order of the digests disagrees with the order of their nixbase32 text
    a, b = StorePath(b"\x01" + bytes(19), "x"), StorePath(bytes(19) + b"\x01", "x")
    assert a.digest > b.digest and a.basename < b.basename
    assert sorted([b, a]) == [a, b]


# --- builders against vectors.json ------------------------------------------------

def test_make_store_path_folds_sha256_to_20_bytes():
    inner = NixHash.of(HashAlgo.SHA256, b"bar")
    s = f"text:{inner.base16()}:/nix/store:foo".encode()
    h = hashlib.sha256(s).digest()
    folded = bytes(h[i] ^ h[i + 20] if i < 12 else h[i] for i in range(20))
    assert make_store_path("text", inner, "foo").digest == folded


def test_text_paths_of_builtins_to_file(vectors):
    foo = StorePath.parse(vector(vectors["store_paths"], 'toFile "foo"')["path"])
    assert make_text_path("foo", hashlib.sha256(b"bar").digest()) == foo
    baz = vector(vectors["store_paths"], "'baz'")["path"]
    assert make_text_path("baz", hashlib.sha256(foo.absolute.encode()).digest(), [foo]) == StorePath.parse(baz)


def test_recursive_sha1_fixed_output(vectors):
    v = vector(vectors["store_paths"], "recursive sha1")
    h = NixHash(HashAlgo.SHA1, bytes.fromhex("0beec7b5ea3f0fdbc95d0dd47f3c5bc275da8a33"))
    assert make_fixed_output_path("bar", h, recursive=True) == StorePath.parse(v["path"])


def test_nix_store_add_of_a_file_and_a_symlink(vectors):
    file_nar = vector(vectors["nars"], "regular file 'Hello World!'")["sha256"]
    link_nar = vector(vectors["nars"], "symlink")["sha256"]
    assert make_source_path("test", bytes.fromhex(file_nar)) == \
        StorePath.parse(vector(vectors["store_paths"], "file named 'test'")["path"])
    assert make_source_path("test", bytes.fromhex(link_nar)) == \
        StorePath.parse(vector(vectors["store_paths"], "symlink named 'test'")["path"])


def test_flat_sha256_of_add_fixed(vectors):
    v = vector(vectors["store_paths"], "flat sha256")
    h = NixHash.of(HashAlgo.SHA256, b"Hello World!")
    assert make_fixed_output_path("hello.txt", h, recursive=False) == StorePath.parse(v["path"])


def test_recursive_sha256_fixed_output_is_a_source_path():
    digest = hashlib.sha256(b"nar").digest()
    assert make_fixed_output_path("x", NixHash(HashAlgo.SHA256, digest), recursive=True) == \
        make_source_path("x", digest)


def test_references_order_and_duplicates_do_not_matter():
    a, b = StorePath.from_basename(f"{HASH}-a"), StorePath(bytes(20), "b")
    digest = hashlib.sha256(b"x").digest()
    assert make_source_path("x", digest, [a, b]) == make_source_path("x", digest, [b, a, a])
    assert make_source_path("x", digest, [a]) != make_source_path("x", digest)
    assert make_source_path("x", digest, self_reference=True) != make_source_path("x", digest)


@pytest.mark.parametrize("recursive, algo", [(False, HashAlgo.SHA256), (True, HashAlgo.SHA1)])
def test_only_recursive_sha256_may_have_references(recursive, algo):
    h = NixHash.of(algo, b"x")
    with pytest.raises(ValidationError):
        make_fixed_output_path("x", h, recursive, [StorePath(bytes(20), "ref")])
    with pytest.raises(ValidationError):
        make_fixed_output_path("x", h, recursive, self_reference=True)


# --- builders against C++ Nix -------------------------------------------------------

@pytest.fixture
def small_zoo(tmp_path: Path) -> Path:
    return make_zoo(tmp_path / "zoo", big=1 << 20)


@interop
def test_source_paths_equal_nix_store_add(small_zoo: Path, tmp_path: Path):
    """Compared with `nix-store --add` of a directory, a file, a symlink and an empty directory."""
    (tmp_path / "empty").mkdir()
    os.symlink("/nix/store/elsewhere", tmp_path / "link")
    for path in (small_zoo, small_zoo / "script.sh", tmp_path / "link", tmp_path / "empty"):
        expected = nix("nix-store", "--add", str(path)).decode().strip()
        assert make_source_path(path.name, nar_hash(path)).absolute == expected


@interop
@pytest.mark.parametrize("algo", list(HashAlgo))
def test_fixed_output_paths_equal_nix_store_add_fixed(algo: HashAlgo, small_zoo: Path):
    """Compared with `nix-store --add-fixed [--recursive] <algo>`."""
    file = small_zoo / "medium.bin"
    flat = nix("nix-store", "--add-fixed", algo.value, str(file)).decode().strip()
    assert make_fixed_output_path(file.name, NixHash.of(algo, file.read_bytes()), False).absolute == flat
    rec = nix("nix-store", "--add-fixed", "--recursive", algo.value, str(small_zoo)).decode().strip()
    h = NixHash(algo, nar_hash(small_zoo, algo.value))
    assert make_fixed_output_path(small_zoo.name, h, True).absolute == rec


@interop
def test_text_paths_with_references_equal_builtins_to_file():
    """Compared with `builtins.toFile` evaluated by nix-instantiate, the second file referring to the first."""
    out = nix("nix-instantiate", "--read-write-mode", "--eval", "--strict", "--json", "-E",
              'let a = builtins.toFile "a" "cairn x"; in [a (builtins.toFile "b" "uses ${a}")]')
    a_path, b_path = (StorePath.parse(p) for p in json.loads(out))
    a = make_text_path("a", hashlib.sha256(b"cairn x").digest())
    assert a == a_path
    assert make_text_path("b", hashlib.sha256(f"uses {a}".encode()).digest(), [a]) == b_path
