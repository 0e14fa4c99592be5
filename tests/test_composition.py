"""Composition: URLs and TOML configs become composed services; the combinators keep their contract."""

from __future__ import annotations

import subprocess
import sys
import threading
from pathlib import Path

import pytest

from castore.blobs.cache import CacheBlobService
from castore.blobs.memory import MemoryBlobService
from castore.composition import BLOBS, DIRECTORIES, ROOT, Composition, compose
from castore.digest import B3Digest
from castore.directories.cache import CacheDirectoryService
from castore.directories.memory import MemoryDirectoryService
from castore.errors import ValidationError
from castore.nodes import Directory, DirectoryNode, FileNode
from castore.url import CAStore, open_castore
from store.composition import PATHINFOS, RECORDS
from store.pathinfo.cache import CachePathInfoService
from store.pathinfo.memory import MemoryPathInfoService
from store.pathinfo.model import PathInfo
from store.pathinfo.signing import SigningPathInfoService
from store.signing import SecretKey, fingerprint
from store.storepath import StorePath
from store.url import open_store

ROOT_DIR = Path(__file__).resolve().parent.parent


def write_config(tmp_path: Path, text: str) -> str:
    path = tmp_path / "cairn.toml"
    path.write_text(text)
    return str(path)


def info_for(name: str, digest_byte: int, nar_size: int = 100) -> PathInfo:
    return PathInfo(StorePath(bytes([digest_byte]) * 20, name), FileNode(b"", B3Digest.of(name.encode()), 1),
                    nar_size, bytes([digest_byte]) * 32)


# -- the registry -------------------------------------------------------------------------


def test_one_url_opens_one_root_per_kind_and_overrides_replace_a_kind(tmp_path):
    with open_store("memory://", pathinfo_url=f"local://{tmp_path}/p") as store:
        assert type(store.castore.blobs).__name__ == "MemoryBlobService"
        assert type(store.castore.directories).__name__ == "MemoryDirectoryService"
        assert type(store.pathinfo).__name__ == "LocalPathInfoService"
        assert type(store.records).__name__ == "LocalRecordService"  # beside the path infos


def test_a_config_file_composes_a_cache_whose_entries_are_built_once(tmp_path):
    config = write_config(tmp_path, f"""
[blobservices.root]
type = "cache"
near = "near"
far = "far"
[blobservices.near]
url = "memory://"
[blobservices.far]
url = "local://{tmp_path}/far"
[directoryservices.root]
url = "local://{tmp_path}/far"
[pathinfoservices.root]
type = "cache"
near = "mem"
far = "far"
[pathinfoservices.mem]
url = "memory://"
blob_service = "near"
[pathinfoservices.far]
url = "local://{tmp_path}/far"
""")
    with open_store(config=config) as store:
        blobs = store.castore.blobs
        assert isinstance(blobs, CacheBlobService) and isinstance(store.pathinfo, CachePathInfoService)
        assert store.pathinfo.near._castore.blobs is blobs.near  # "near" built once, shared
        assert store.pathinfo.far._castore.blobs is blobs  # by default, the root


@pytest.mark.parametrize("text, message", [
    ('[blobservices.root]\ntype = "cache"\nnear = "root"\nfar = "x"\n', "refers to itself"),
    ('[blobservices.root]\ntype = "nonsense"\n', "unknown type or URL scheme 'nonsense'"),
    ('[blobservices.root]\nurl = "memory://"\ncolour = "blue"\n', "unknown key 'colour'"),
    ('[blobservices.root]\ntype = "cache"\nnear = "a"\nfar = "b"\n[blobservices.a]\nurl = "memory://"\n',
     "no service blobservices.b"),
    ('[blobservices.root]\nurl = "memory://"\ntype = "cache"\n', "either 'url' or 'type'"),
    ('[blobservices]\nroot = 3\n', "must hold tables"),
    ('[blobservices.root\n', "config"),
])
def test_a_bad_config_is_one_clear_error(tmp_path, text, message):
    with pytest.raises(ValidationError, match=message):
        open_castore(config=write_config(tmp_path, text))


def test_a_bad_config_on_the_command_line_is_one_line_and_exit_1(tmp_path):
    config = write_config(tmp_path, '[blobservices.root]\ntype = "nonsense"\n')
    done = subprocess.run([sys.executable, "-m", "store.cli", "path-info", "--config", config, "/nix/store/"
                           + "a" * 32 + "-x"], capture_output=True, text=True, cwd=ROOT_DIR)
    assert done.returncode == 1
    assert done.stderr.count("\n") == 1 and "unknown type or URL scheme" in done.stderr


def test_the_command_line_flags_choose_each_service(tmp_path, zoo):
    """`cairn import` with castore in one store and path infos in another; `cairn dump` finds both."""
    castore_url, pathinfo_url = f"local://{tmp_path}/castore", f"local://{tmp_path}/pathinfo"
    flags = ["--store", castore_url, "--pathinfo-store", pathinfo_url]
    cairn = [sys.executable, "-m", "store.cli"]
    added = subprocess.run([*cairn, "import", *flags, str(zoo)], capture_output=True, text=True, check=True,
                           cwd=ROOT_DIR).stdout.strip()
    with open_store(pathinfo_url) as store:
        assert store.pathinfo.get(StorePath.parse(added).digest) is not None
    with open_store(castore_url) as store:
        assert store.pathinfo.get(StorePath.parse(added).digest) is None
    dumped = subprocess.run([*cairn, "dump", *flags, added], capture_output=True, check=True, cwd=ROOT_DIR).stdout
    expected = subprocess.run(["nix-store", "--dump", str(zoo)], capture_output=True, check=True).stdout \
        if _have_nix() else dumped
    assert dumped == expected


def _have_nix() -> bool:
    import shutil

    return shutil.which("nix-store") is not None


def test_store_and_castore_never_import_the_layers_above_them():
    """castore knows no store; store knows neither fuse nor nar_bridge (the CLI finds them by entry point)."""
    above = {"castore": ("store", "fuse", "nar_bridge"), "store": ("fuse", "nar_bridge")}
    offenders = []
    for package, forbidden in above.items():
        for source in (ROOT_DIR / package).rglob("*.py"):
            for line in source.read_text().splitlines():
                words = line.split()
                if len(words) >= 2 and words[0] in ("import", "from") and words[1].split(".")[0] in forbidden:
                    offenders.append(f"{source.relative_to(ROOT_DIR)}: {line.strip()}")
    assert offenders == []


def test_compose_without_a_file_or_url_uses_the_default_store(monkeypatch, tmp_path):
    monkeypatch.setenv("CAIRN_STORE", f"local://{tmp_path}/default")
    monkeypatch.delenv("CAIRN_CONFIG", raising=False)
    assert compose(kinds=(BLOBS,)) == {BLOBS: {ROOT: {"url": f"local://{tmp_path}/default"}}}


def test_records_default_to_the_store_that_keeps_writes_behind_wrappers(tmp_path):
    upstream = "nix+http://127.0.0.1:1/?trusted-public-keys=x:" + "A" * 43 + "="
    key = tmp_path / "k.sec"
    key.write_text(str(SecretKey.generate("test-1")))
    wrappers = ({"type": "cache", "near": ROOT, "far": {"url": upstream}},
                {"type": "signing", "inner": ROOT, "keys": [str(key)]})
    from store.composition import default_records, wrap_root

    config = compose(store=f"local://{tmp_path}/s", kinds=(BLOBS, DIRECTORIES, PATHINFOS))
    for wrapper in wrappers:
        wrap_root(config, PATHINFOS, wrapper)
    default_records(config, None)
    assert config[RECORDS][ROOT] == {"url": f"local://{tmp_path}/s"}
    assert config[PATHINFOS][ROOT] == {"type": "signing", "inner": "signing-0", "keys": [str(key)]}
    assert config[PATHINFOS]["signing-0"] == {"type": "cache", "near": "cache-0", "far": "far-0"}


# -- the combinators ----------------------------------------------------------------------


def test_the_blob_cache_reads_far_once_then_near_and_writes_far():
    near, far = MemoryBlobService(), MemoryBlobService()
    cache = CacheBlobService(near, far)
    with far.open_write() as w:
        w.write(b"far data")
        digest = w.close()
    assert not near.has(digest)
    assert cache.read_all(digest) == b"far data" and near.has(digest)
    with cache.open_read(digest) as r:
        assert r.read() == b"far data"
    with cache.open_write() as w:
        w.write(b"new")
        new = w.close()
    assert far.has(new) and not near.has(new)
    assert cache.open_read(B3Digest.of(b"nowhere")) is None and not cache.has(B3Digest.of(b"nowhere"))


def test_the_directory_cache_copies_a_whole_closure_even_with_a_child_shared_at_two_depths():
    leaf = Directory(files=(FileNode(b"f", B3Digest.of(b"x"), 1),))
    middle = Directory(directories=(DirectoryNode(b"leaf", leaf.digest, leaf.size),))
    root = Directory(directories=(DirectoryNode(b"a", leaf.digest, leaf.size),
                                  DirectoryNode(b"b", middle.digest, middle.size)))
    near, far = MemoryDirectoryService(), MemoryDirectoryService()
    far.put([leaf, middle, root])
    cache = CacheDirectoryService(near, far)
    assert [d.digest for d in cache.get_recursive(root.digest)] == [root.digest, leaf.digest, middle.digest]
    assert near.get(middle.digest) == middle and near.get(leaf.digest) == leaf
    assert cache.get(B3Digest.of(b"nowhere")) is None
    assert list(cache.get_recursive(B3Digest.of(b"nowhere"))) == []


class SlowFar(MemoryPathInfoService):
    """A far store that counts lookups and holds them until released."""

    def __init__(self, castore: CAStore, read_only: bool = False) -> None:
        super().__init__(castore)
        self.read_only = read_only
        self.asked = 0
        self.release = threading.Event()

    def get(self, digest: bytes) -> PathInfo | None:
        self.asked += 1
        self.release.wait(10)
        return super().get(digest)


def test_the_pathinfo_cache_asks_far_once_for_concurrent_misses_and_keeps_the_answer_near():
    castore = CAStore(MemoryBlobService(), MemoryDirectoryService())
    near, far = MemoryPathInfoService(castore), SlowFar(castore)
    info = info_for("x", 1)
    super(SlowFar, far).put(info)
    cache = CachePathInfoService(near, far)
    results = []
    threads = [threading.Thread(target=lambda: results.append(cache.get(info.store_path.digest))) for _ in range(8)]
    for t in threads:
        t.start()
    while far.asked == 0:
        threading.Event().wait(0.01)
    far.release.set()
    for t in threads:
        t.join()
    assert results == [info] * 8 and far.asked == 1
    assert near.get(info.store_path.digest) == info
    assert cache.get(bytes(20)) is None


@pytest.mark.parametrize("far_read_only", [False, True])
def test_the_pathinfo_cache_writes_far_unless_far_is_read_only(far_read_only):
    castore = CAStore(MemoryBlobService(), MemoryDirectoryService())
    near, far = MemoryPathInfoService(castore), SlowFar(castore, read_only=far_read_only)
    far.release.set()
    cache = CachePathInfoService(near, far)
    info = info_for("y", 2)
    cache.put(info)
    keeper, other = (near, far) if far_read_only else (far, near)
    assert MemoryPathInfoService.get(keeper, info.store_path.digest) == info
    assert MemoryPathInfoService.get(other, info.store_path.digest) is None
    assert list(cache.list()) == [info]


def test_signing_adds_a_valid_signature_per_key_and_keeps_stored_ones():
    castore = CAStore(MemoryBlobService(), MemoryDirectoryService())
    inner = MemoryPathInfoService(castore)
    first, second = SecretKey.generate("first-1"), SecretKey.generate("second-1")
    refs = (StorePath(b"\x09" * 20, "z-dep"), StorePath(b"\x01" * 20, "a-dep"))
    stored = info_for("signed", 3)._replace(references=refs, signatures=(first.sign(b"old"),))
    inner.put(stored)
    signing = SigningPathInfoService(inner, (second,))
    served = signing.get(stored.store_path.digest)
    assert served.signatures[0] == first.sign(b"old")
    message = fingerprint(stored.store_path, stored.nar_sha256, stored.nar_size, sorted(refs))
    assert second.public_key().verify(message, served.signatures[1])
    assert inner.get(stored.store_path.digest).signatures == (first.sign(b"old"),)  # nothing written
    assert [i.signatures for i in signing.list()] == [served.signatures]
    assert signing.get(bytes(20)) is None


def test_a_signing_entry_with_an_unreadable_key_file_is_refused(tmp_path):
    config = write_config(tmp_path, f"""
[pathinfoservices.root]
type = "signing"
inner = "plain"
keys = ["{tmp_path}/missing.sec"]
[pathinfoservices.plain]
url = "memory://"
[blobservices.root]
url = "memory://"
[directoryservices.root]
url = "memory://"
""")
    with pytest.raises(ValidationError, match="missing.sec"):
        open_store(config=config)


def test_a_composition_closes_what_it_built_once(tmp_path):
    comp = Composition({BLOBS: {ROOT: {"type": "cache", "near": "a", "far": "a"}, "a": {"url": "memory://"}}})
    blobs = comp.get(BLOBS)
    assert blobs.near is blobs.far
    closed = []
    blobs.near.close = lambda: closed.append(True)
    comp.close()
    assert closed == [True]


@pytest.mark.parametrize("url, message", [
    ("local:///tmp/x?colour=blue", "unknown parameter 'colour'"),
    ("local:///tmp/x?packs=ftp://host/dir", "packs must be s3://BUCKET/PREFIX or file:///dir"),
    ("local:///tmp/x?packs=file://relative/dir", "packs=file:///abs/dir"),
    ("local:///tmp/x?packs=s3:///prefix-only", "names a bucket"),
    ("postgresql://postgres@/db?host=/tmp", "needs packs=s3://BUCKET/PREFIX or packs=file:///dir"),
    ("postgresql://user:secret@/db?host=/tmp&packs=file:///tmp/p", "carries no password"),
])
def test_a_bad_store_location_is_one_clear_error(url, message):
    with pytest.raises(ValidationError, match=message):
        open_store(url)


def test_local_records_with_packs_elsewhere(tmp_path, zoo):
    """`local:///dir?packs=file:///shared`: LMDB here, packs in another directory."""
    url = f"local://{tmp_path}/meta-here?packs=file://{tmp_path}/shared-packs"
    with open_store(url) as store:
        from store import api

        info = api.import_path(store, zoo)
    assert list((tmp_path / "shared-packs").rglob("*.pack"))
    assert not (tmp_path / "meta-here" / "packs").exists()
    with open_store(url) as store:
        assert store.pathinfo.get(info.store_path.digest) == info


@pytest.mark.parametrize("query, message", [
    ("packs-cache=relative", "packs-cache=/abs/dir"),
    ("packs-cache=/tmp/c&packs-cache-bytes=lots", "positive number of bytes"),
])
def test_a_bad_pack_cache_is_one_clear_error(tmp_path, query, message):
    with pytest.raises(ValidationError, match=message):
        open_store(f"local://{tmp_path}/s?{query}")
