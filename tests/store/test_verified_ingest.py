"""The verified ingest on its own: every compression, every narinfo field kept, each lie named, and a
refused NAR leaves no directory behind."""

from __future__ import annotations

import dataclasses
import io
import lzma

import pytest
import zstandard

from castore.errors import ValidationError
from nar_bridge.names import NarFile
from store.narinfo import NarInfo
from store.nixhash import HashAlgo, NixHash
from store.signing import SecretKey
from store.url import open_store
from store.verified_ingest import ingest_verified
from tests.nar_bridge.conftest import make_upload, small_tree

COMPRESS = {"none": lambda b: b, "xz": lzma.compress, "zstd": lambda b: zstandard.ZstdCompressor().compress(b)}


@pytest.fixture
def upload(tmp_path):
    return make_upload(small_tree(tmp_path / "tree", "verified"))


def narinfo_for(upload, compression: str, **changes) -> tuple[NarInfo, bytes]:
    """A narinfo as Nix writes it for the upload's NAR in `compression`, with FileHash and FileSize."""
    body = COMPRESS[compression](upload.nar)
    file_hash = NixHash.of(HashAlgo.SHA256, body)
    narinfo = NarInfo.parse(upload.narinfo(NarFile(file_hash.digest, compression)) + "X-Extra: kept\n")
    fields = dict(file_hash=file_hash, file_size=len(body), signatures=(SecretKey.generate("k-1").sign(
        upload.info.fingerprint()),), system="x86_64-linux")
    fields.update(changes)
    return dataclasses.replace(narinfo, **fields), body


@pytest.mark.parametrize("compression", sorted(COMPRESS))
def test_a_true_narinfo_gives_its_path_info_every_field_kept(upload, compression):
    narinfo, body = narinfo_for(upload, compression)
    read: list[int] = []
    with open_store("memory://") as store:
        info = ingest_verified(store.castore, io.BytesIO(body), narinfo, progress=read.append)
        assert store.pathinfo.get(info.store_path.digest) is None  # checked, not put
        assert store.pathinfo.calculate_nar(info.node) == (narinfo.nar_size, narinfo.nar_hash)
    assert (info.node, info.nar_sha256, info.nar_size) == (upload.info.node, upload.info.nar_sha256,
                                                           upload.info.nar_size)
    assert (info.signatures, info.references, info.ca) == (narinfo.signatures, narinfo.references, narinfo.ca)
    assert info.extras.system == "x86_64-linux" and info.extras.unknown[0].key == "X-Extra"
    assert sum(read) == len(body)


@pytest.mark.parametrize("change, message", [
    (dict(file_size=1), "FileSize"),
    (dict(file_hash=NixHash.of(HashAlgo.SHA256, b"other")), "FileHash"),
    (dict(file_hash=NixHash.of(HashAlgo.SHA512, b"other")), "FileHash"),
    (dict(nar_size=7), "NarSize"),
    (dict(nar_hash=bytes(32)), "NarHash"),
])
def test_each_lie_is_named_and_no_directory_is_kept(upload, change, message):
    narinfo, body = narinfo_for(upload, "xz", **change)
    with open_store("memory://") as store:
        with pytest.raises(ValidationError, match=f"^{message} "):
            ingest_verified(store.castore, io.BytesIO(body), narinfo)
        assert store.castore.directories.get(upload.info.node.digest) is None


def test_a_narinfo_without_file_fields_is_checked_on_the_nar_alone(upload):
    narinfo, body = narinfo_for(upload, "xz", file_hash=None, file_size=None)
    with open_store("memory://") as store:
        assert ingest_verified(store.castore, io.BytesIO(body), narinfo).nar_sha256 == upload.info.nar_sha256
