"""The PathInfoService contract (store/pathinfo/service.py, SPEC 3), on every backend.

A PathInfo is validated when it is built (store/pathinfo/model.py: from the wire, from disk, or
by a constructor), so no service receives an invalid one; the gRPC edge's refusal of invalid
messages is tested in tests/store/test_pathinfo.py.
"""

from __future__ import annotations

import contextlib
import hashlib
import threading
from pathlib import Path

import pytest

from castore.digest import EMPTY_DIGEST, B3Digest
from castore.ingest import import_path
from castore.nodes import DirectoryNode, FileNode, SymlinkNode
from store.contentaddress import ContentAddress
from store.narinfo import NarinfoExtras, UnknownField
from store.nixbase32 import encode as nix32
from store.pathinfo.model import PathInfo
from store.pathinfo.service import PathInfoService
from store.signing import SecretKey
from store.storepath import StorePath
from store.url import Store
from tests.conformance.backends import Backend
from tests.conftest import make_zoo
from tests.store.nixtool import interop, nix

REF = StorePath.from_basename("00bgd045z0d4icpbc2yyz4gx48ak44la-dep")
DRV = StorePath.from_basename("0g78smhdlirplinc5v7fxwmxr731rgx4-thing.drv")
PATH = StorePath.from_basename("7nn1mg7sbg5c7rs9nzcfks9almxk6m5x-test")
SHA = hashlib.sha256(b"nar").digest()
KEYS = [SecretKey.generate("test-1"), SecretKey.generate("other.example.org-2")]


def sample(keys: list[SecretKey] = KEYS[:1], **kw) -> PathInfo:
    """A PathInfo with every field set (kw overrides), signed by `keys`."""
    args = dict(store_path=PATH, node=FileNode(b"", EMPTY_DIGEST, 0), nar_size=112, nar_sha256=SHA,
                references=(REF, PATH), deriver=DRV,
                ca=ContentAddress.parse("fixed:r:sha256:1b4sb93wp679q4zx9k1ignby1yna3z7c4c2ri3wphylbc2dwsys0"))
    args.update(kw)
    info = PathInfo(**args)
    return info.with_signatures(tuple(key.sign(info.fingerprint()) for key in keys))


def numbered(n: int) -> PathInfo:
    """Distinct paths with distinct NAR hashes."""
    return sample(store_path=StorePath(hashlib.sha1(b"%d" % n).digest(), f"path-{n}"),
                  nar_sha256=hashlib.sha256(b"nar %d" % n).digest(), nar_size=112 + 8 * n)


VARIANTS = {
    "every field": sample(),
    "no optional field": sample(keys=[], references=(), deriver=None, ca=None),
    "two signatures": sample(keys=KEYS),
    "directory node": sample(node=DirectoryNode(b"", B3Digest.of(b"d"), 6)),
    "symlink node": sample(node=SymlinkNode(b"", b"/nix/store/elsewhere")),
    "executable file": sample(node=FileNode(b"", B3Digest.of(b"x"), 1, executable=True)),
    "text CA": sample(ca=ContentAddress.parse("text:sha256:" + nix32(hashlib.sha256(b"t").digest()))),
    "flat md5 CA": sample(ca=ContentAddress.parse("fixed:md5:" + nix32(hashlib.md5(b"f").digest()))),
    "large NAR": sample(nar_size=(1 << 40) + 1),
}


def test_put_get_list_and_get_by_nar_sha256(pathinfo: PathInfoService) -> None:
    info = sample()
    assert pathinfo.get(PATH.digest) is None
    assert pathinfo.put(info) == info
    assert pathinfo.get(PATH.digest) == info
    assert pathinfo.get(REF.digest) is None
    assert list(pathinfo.list()) == [info]
    assert pathinfo.get_by_nar_sha256(SHA) == info
    assert pathinfo.get_by_nar_sha256(hashlib.sha256(b"other").digest()) is None


@pytest.mark.parametrize("variant", VARIANTS, ids=list(VARIANTS))
def test_every_field_round_trips(pathinfo: PathInfoService, variant: str) -> None:
    info = VARIANTS[variant]
    assert pathinfo.put(info) == info
    got = pathinfo.get(PATH.digest)
    assert got == info
    assert got.node.name == PATH.basename.encode()
    assert list(pathinfo.list()) == [info]


def test_narinfo_extras_come_back_where_the_backend_keeps_them(pathinfo: PathInfoService, backend: Backend) -> None:
    extras = NarinfoExtras("x86_64-linux", (UnknownField("URL", "X-Thing", "value"),))
    info = sample()._replace(extras=extras)
    pathinfo.put(info)
    expected = info if backend.keeps_narinfo_extras else info._replace(extras=None)
    assert pathinfo.get(PATH.digest) == expected
    assert list(pathinfo.list()) == [expected]
    assert pathinfo.get_by_nar_sha256(SHA) == expected


def test_a_second_put_of_a_path_replaces_the_first(pathinfo: PathInfoService) -> None:
    first = sample()
    second = sample(keys=KEYS[1:], nar_sha256=hashlib.sha256(b"rebuilt").digest(), nar_size=120,
                    references=(REF,), deriver=None, ca=None)
    pathinfo.put(first)
    assert pathinfo.put(second) == second
    assert pathinfo.get(PATH.digest) == second
    assert list(pathinfo.list()) == [second]
    assert pathinfo.get_by_nar_sha256(second.nar_sha256) == second
    assert pathinfo.get_by_nar_sha256(first.nar_sha256) is None  # no path has that NAR any more


def test_update_reads_decides_and_writes_one_path(pathinfo: PathInfoService) -> None:
    seen: list[PathInfo | None] = []

    def keep(wanted: PathInfo | None):
        def decide(existing: PathInfo | None) -> PathInfo | None:
            seen.append(existing)
            return wanted
        return decide

    first, second = sample(), sample(keys=KEYS)
    assert pathinfo.update(PATH.digest, keep(None)) is None
    assert pathinfo.get(PATH.digest) is None
    assert pathinfo.update(PATH.digest, keep(first)) == first
    assert pathinfo.update(PATH.digest, keep(None)) == first  # None: nothing changes
    assert pathinfo.update(PATH.digest, keep(first)) == first
    assert pathinfo.update(PATH.digest, keep(second)) == second
    assert seen == [None, None, first, first, first]
    assert pathinfo.get(PATH.digest) == second
    assert list(pathinfo.list()) == [second]


def test_concurrent_updates_of_one_path_lose_nothing(backend: Backend, tmp_path: Path) -> None:
    """Two writers (two handles of one durable store: two daemons of a cluster) each add
    signatures to one path, one update at a time: every signature is kept, as none of them
    read the record between another's read and write."""
    base = sample(keys=[])
    keys = [[SecretKey.generate(f"writer{w}-{i}") for i in range(8)] for w in range(2)]
    with contextlib.ExitStack() as stack:
        first = stack.enter_context(backend.open(tmp_path))
        second = stack.enter_context(backend.open(tmp_path)) if backend.durable else first
        first.pathinfo.put(base)
        errors: list[BaseException] = []

        def add(store: Store, mine: list[SecretKey]) -> None:
            try:
                for key in mine:
                    store.pathinfo.update(PATH.digest, lambda existing, key=key: existing.with_signatures(
                        (key.sign(existing.fingerprint()),)))
            except BaseException as e:  # noqa: BLE001 - reported below
                errors.append(e)

        threads = [threading.Thread(target=add, args=(store, mine)) for store, mine in zip((first, second), keys)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert errors == []
        signers = {s.key_name for s in first.pathinfo.get(PATH.digest).signatures}
        assert signers == {key.name for mine in keys for key in mine}


def test_list_returns_every_path_once(pathinfo: PathInfoService) -> None:
    infos = [numbered(n) for n in range(30)]
    for info in infos:
        pathinfo.put(info)
    pathinfo.put(infos[3])
    listed = list(pathinfo.list())
    assert len(listed) == len(infos)
    assert sorted(listed, key=lambda i: i.store_path.digest) == sorted(infos, key=lambda i: i.store_path.digest)
    for info in infos:
        assert pathinfo.get(info.store_path.digest) == info
        assert pathinfo.get_by_nar_sha256(info.nar_sha256) == info


def test_path_infos_survive_reopening(durable: Backend, tmp_path: Path) -> None:
    infos = [numbered(n) for n in range(3)]
    with durable.open(tmp_path) as store:
        for info in infos:
            store.pathinfo.put(info)
    with durable.open(tmp_path) as store:
        assert [store.pathinfo.get(i.store_path.digest) for i in infos] == infos
        assert store.pathinfo.get_by_nar_sha256(infos[1].nar_sha256) == infos[1]


def test_calculate_nar_matches_the_vectors(store: Store, vectors: dict, tmp_path: Path) -> None:
    f = tmp_path / "hello"
    f.write_bytes(b"Hello World!")
    node, _ = import_path(store.castore, f)
    nars = {v["what"]: v for v in vectors["nars"]}
    size, sha = store.pathinfo.calculate_nar(node)
    assert (size, sha.hex()) == (nars["regular file 'Hello World!'"]["size"],
                                 nars["regular file 'Hello World!'"]["sha256"])
    assert store.pathinfo.calculate_nar(node) == (size, sha)  # cached
    link = SymlinkNode(b"", b"/nix/store/somewhereelse")
    assert store.pathinfo.calculate_nar(link)[1].hex() == nars["symlink -> /nix/store/somewhereelse"]["sha256"]


@interop
def test_calculate_nar_of_a_tree_equals_nix_store_dump(store: Store, tmp_path: Path) -> None:
    """Compared with C++ Nix: the size and sha256 of `nix-store --dump` of the same tree."""
    zoo = make_zoo(tmp_path / "zoo", big=(3 << 20) + 3)
    node, _ = import_path(store.castore, zoo)
    nar = nix("nix-store", "--dump", str(zoo))
    assert store.pathinfo.calculate_nar(node) == (len(nar), hashlib.sha256(nar).digest())
    named = node._replace(name=b"any-name")  # the name of the root is ignored
    assert store.pathinfo.calculate_nar(named) == (len(nar), hashlib.sha256(nar).digest())
