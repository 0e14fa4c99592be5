"""`cairn archive` against real C++ Nix: it archives `nix copy --to file://` caches (from disk and
through nginx), and nar-bridge serves them back so that `nix copy --from` and `nix store verify`
pass with the original signatures; interrupted runs finish later, bad data is skipped."""

from __future__ import annotations

import dataclasses
import json
import lzma
import os
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

from nar_bridge.names import NarFile
from nar_bridge.narinfo import served_narinfo
from store.archive import Status, archive
from store.binary_cache import open_source
from castore.digest import B3Digest
from castore.nodes import FileNode
from store.narinfo import NarInfo, NarinfoExtras
from store.pathinfo.model import PathInfo
from store.storepath import StorePath
from store.nixhash import HashAlgo, NixHash
from store.url import open_store
from tests.nar_bridge.conftest import make_upload, nix_cache, small_tree, start_bridge  # noqa: F401 (fixtures)
from tests.nar_bridge.test_nix_interop import nginx  # noqa: F401 (fixture)
from tests.store.nixtool import build_closure, interop, new_key, nix

CAIRN = str(Path(sys.executable).parent / "cairn")
EXTRA_LINES = "System: x86_64-linux\nX-Archive-Test: kept\n"  # Nix writes neither; signatures cover neither


@dataclass
class Cache:
    dir: Path
    top: str
    paths: list[str]
    public_key: str


@pytest.fixture(scope="module")
def cache(tmp_path_factory) -> Cache:
    """A signed xz `file://` cache of five input-addressed paths with references, a symlink and a
    self-reference; every narinfo also has a System line and an unknown key."""
    work = tmp_path_factory.mktemp("archive-cache")
    top, paths = build_closure(work, f'''
        a = sh "archive-a" "echo a-{os.getpid()} > $out";
        b = sh "archive-b" "echo b-{os.getpid()} > $out";
        c = sh "archive-c" "/bin/mkdir $out; echo ${{a}} > $out/a; /bin/ln -s ${{b}} $out/b";
        d = sh "archive-d" "/bin/mkdir $out; echo ${{c}} > $out/c; echo {os.getpid()} > $out/same";''',
        'sh "archive-top" "/bin/mkdir -p $out/bin; echo ${d} > $out/bin/d; echo $out > $out/self"')
    assert len(paths) == 5
    secret, public = new_key(work, f"archive-test-{os.getpid()}")
    cache_dir = work / "cache"
    nix("nix", "copy", "--to", f"file://{cache_dir}?secret-key={secret}", top)
    for narinfo in cache_dir.glob("*.narinfo"):
        assert "Compression: xz" in narinfo.read_text()
        narinfo.write_text(narinfo.read_text() + EXTRA_LINES)
    return Cache(cache_dir, top, paths, public)


def cairn(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([CAIRN, *args], capture_output=True, text=True)


def narinfo_file(cache: Path, store_path: str) -> Path:
    return cache / f"{Path(store_path).name[:32]}.narinfo"


def assert_served_intact(cache: Cache, bridge, tmp_path: Path) -> None:
    """nix copy --from the bridge with the key trusted, nix store verify, narinfos keep their extra lines."""
    dest = tmp_path / "dest"
    nix("nix", "copy", "--from", bridge.url, "--to", f"local?root={dest}", "--trusted-public-keys",
        cache.public_key, cache.top)
    for path in cache.paths:
        assert nix("nix", "hash", "path", f"{dest}{path}") == nix("nix", "hash", "path", path)
    nix("nix", "store", "verify", "--store", bridge.url, "--trusted-public-keys", cache.public_key,
        "--recursive", cache.top)
    for path in cache.paths:
        original = NarInfo.parse(narinfo_file(cache.dir, path).read_text())
        served = NarInfo.parse(bridge.get(f"/{Path(path).name[:32]}.narinfo").body)
        assert served.system == original.system == "x86_64-linux"
        assert served.unknown == original.unknown and served.unknown[0].key == "X-Archive-Test"
        assert (served.signatures, served.references, served.deriver) == \
            (original.signatures, original.references, original.deriver)


@interop
def test_file_cache_is_archived_and_served_back_verifiable(cache, tmp_path, start_bridge, nix_cache):
    store = f"local://{tmp_path}/store"
    done = cairn("archive", f"file://{cache.dir}", "--store", store)
    assert done.returncode == 0, done.stderr
    assert sorted(done.stdout.split()) == sorted(cache.paths)
    assert "archived 5 paths, 0 already archived, 0 failed" in done.stderr
    assert_served_intact(cache, start_bridge(store), tmp_path)


@interop
def test_http_cache_is_archived_by_walking_the_roots(cache, tmp_path, start_bridge, nix_cache, nginx):
    roots = tmp_path / "roots"
    roots.write_text(cache.top + "\n")
    store = f"local://{tmp_path}/store"
    done = cairn("archive", nginx(cache.dir), "--roots", str(roots), "--jobs", "3", "--store", store)
    assert done.returncode == 0, done.stderr
    assert sorted(done.stdout.split()) == sorted(cache.paths)
    assert_served_intact(cache, start_bridge(store), tmp_path)


@interop
def test_a_killed_run_is_finished_by_the_next_and_nothing_is_archived_twice(cache, tmp_path):
    source = tmp_path / "cache"
    shutil.copytree(cache.dir, source)
    stuck = source / NarInfo.parse(narinfo_file(source, cache.top).read_text()).url
    nar_file = stuck.read_bytes()
    stuck.unlink()
    os.mkfifo(stuck)  # the top path's NAR arrives only as far as the test lets it
    store = f"local://{tmp_path}/store"
    run = subprocess.Popen([CAIRN, "archive", f"file://{source}", "--jobs", "8", "--store", store],
                           stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    finished = [run.stdout.readline().strip() for _ in range(4)]
    assert sorted(finished) == sorted(p for p in cache.paths if p != cache.top)
    with open(stuck, "wb") as fifo:
        fifo.write(nar_file[:len(nar_file) // 2])
        fifo.flush()
        time.sleep(0.5)
        run.send_signal(signal.SIGKILL)
        run.wait()
    stuck.unlink()
    stuck.write_bytes(nar_file)

    again = cairn("archive", f"file://{source}", "--store", store)
    assert again.returncode == 0, again.stderr
    assert cache.top in again.stdout.split()
    last = cairn("archive", f"file://{source}", "--store", store)
    assert last.returncode == 0 and last.stdout == ""
    assert "archived 0 paths, 5 already archived, 0 failed" in last.stderr
    assert "0 B new stored" in last.stderr
    infos = json.loads(subprocess.run([CAIRN, "path-info", "--json", *cache.paths, "--store", store],
                                      capture_output=True, check=True).stdout)
    assert sorted(i["path"] for i in infos) == sorted(cache.paths)


def corrupt_nar(source: Path, narinfo: NarInfo) -> NarInfo:
    """A structurally broken NAR, well compressed, with FileHash and FileSize to match."""
    nar_path = source / narinfo.url
    nar = lzma.decompress(nar_path.read_bytes())
    broken = lzma.compress(nar.replace(b"nix-archive-1", b"nix-archive-2", 1))
    nar_path.write_bytes(broken)
    return dataclasses.replace(narinfo, file_hash=NixHash.of(HashAlgo.SHA256, broken), file_size=len(broken))


def wrong_nar_hash(source: Path, narinfo: NarInfo) -> NarInfo:
    return dataclasses.replace(narinfo, nar_hash=bytes(32))


def truncated_xz(source: Path, narinfo: NarInfo) -> NarInfo:
    nar_path = source / narinfo.url
    data = nar_path.read_bytes()
    nar_path.write_bytes(data[:len(data) // 2])
    return narinfo


@interop
def test_bad_data_is_reported_per_path_and_never_stored(cache, tmp_path):
    source = tmp_path / "cache"
    shutil.copytree(cache.dir, source)
    spoiled = {}
    for path, spoil in zip(sorted(cache.paths), (corrupt_nar, wrong_nar_hash, truncated_xz)):
        file = narinfo_file(source, path)
        file.write_text(spoil(source, NarInfo.parse(file.read_text())).render())
        spoiled[path] = spoil.__name__
    store = f"local://{tmp_path}/store"
    done = cairn("archive", f"file://{source}", "--store", store)
    assert done.returncode == 1
    assert sorted(done.stdout.split()) == sorted(set(cache.paths) - set(spoiled))
    errors = [line for line in done.stderr.splitlines() if line.startswith("cairn: error: ")]
    assert len(errors) == 3, done.stderr
    for path in spoiled:
        assert any(path in line for line in errors)
    assert "Traceback" not in done.stderr
    assert "archived 2 paths, 0 already archived, 3 failed" in done.stderr
    for path in spoiled:
        assert cairn("path-info", path, "--store", store).returncode != 0


def plain_cache(root: Path, tmp_path: Path, names: list[str]) -> list[NarInfo]:
    """A `file://` cache of small imported trees, NARs uncompressed with FileHash and FileSize."""
    root.mkdir()
    (root / "nar").mkdir()
    (root / "nix-cache-info").write_text("StoreDir: /nix/store\n")
    narinfos = []
    for name in names:
        upload = make_upload(small_tree(tmp_path / "trees" / name, name))
        file_hash = NixHash.of(HashAlgo.SHA256, upload.nar)
        narinfo = NarInfo.parse(upload.narinfo(NarFile(file_hash.digest, "none")) + EXTRA_LINES)
        narinfo = dataclasses.replace(narinfo, file_hash=file_hash, file_size=len(upload.nar))
        (root / narinfo.url).write_bytes(upload.nar)
        (root / f"{narinfo.store_path.hash_part}.narinfo").write_text(narinfo.render())
        narinfos.append(narinfo)
    return narinfos


def test_missing_nar_and_malformed_narinfo_are_reported_and_the_rest_kept_with_extras(tmp_path):
    root = tmp_path / "cache"
    good, missing, malformed = plain_cache(root, tmp_path, ["good", "missing", "malformed"])
    (root / missing.url).unlink()
    (root / f"{malformed.store_path.hash_part}.narinfo").write_text("StorePath: nonsense\n")
    outcomes = []
    with open_store("memory://") as store:
        report = archive(store, open_source(f"file://{root}"), on_outcome=outcomes.append)
        assert (report.archived, report.failed) == (1, 2)
        failed = {o.hash_part: o.error for o in outcomes if o.status is Status.FAILED}
        assert "No such file" in failed[missing.store_path.hash_part]
        assert "lacks required field" in failed[malformed.store_path.hash_part]
        assert store.pathinfo.get(missing.store_path.digest) is None
        served = served_narinfo(store.pathinfo.get(good.store_path.digest))
        assert (served.system, served.unknown) == (good.system, good.unknown)
        again = archive(store, open_source(f"file://{root}"), [good.store_path])
        assert (again.archived, again.skipped) == (0, 1)


def test_narinfo_extras_survive_a_reopened_local_store(tmp_path):
    narinfo = NarInfo.parse(f"StorePath: /nix/store/{'a' * 32}-x\nURL: nar/x.nar\nX-First: 1\nNarHash: sha256:"
                            f"{'0' * 52}\nNarSize: 8\n{EXTRA_LINES}")
    extras = NarinfoExtras.of(narinfo)
    info = PathInfo(narinfo.store_path, FileNode(b"", B3Digest.of(b"x"), 1), 8, bytes(32), extras=extras)
    plain = info._replace(store_path=StorePath(bytes(20), "y"), extras=None)
    with open_store(f"local://{tmp_path}/store") as store:
        store.pathinfo.put(info)
        store.pathinfo.put(plain)
    with open_store(f"local://{tmp_path}/store") as store:
        assert store.pathinfo.get(narinfo.store_path.digest).extras == extras
        assert store.pathinfo.get(bytes(20)).extras is None
        assert {i.extras for i in store.pathinfo.list()} == {extras, None}
    assert [u.after for u in extras.unknown] == ["URL", "System"]
