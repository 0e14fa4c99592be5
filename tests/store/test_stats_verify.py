"""`cairn stats` and `cairn verify` on local stores: figures, clean passes, flipped pack bytes,
and signatures (made by C++ Nix's `nix store sign` in the interop test)."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from store import api
from store.nixhash import HashAlgo, NixHash
from store.signing import SecretKey
from store.storepath import StorePath
from tests.castore.local_store import flip_byte_of_chunk
from tests.conftest import make_zoo
from tests.store.nixtool import build_closure, interop, new_key, nix

CAIRN = str(Path(sys.executable).parent / "cairn")


def cairn(*args: str, store: str, ok: bool = True) -> tuple[int, str, str]:
    done = subprocess.run([CAIRN, *args, "--store", store], capture_output=True, text=True)
    if ok and done.returncode:
        raise AssertionError(f"cairn {' '.join(args)} failed: {done.stderr}")
    return done.returncode, done.stdout, done.stderr


@pytest.fixture
def store_dir(tmp_path: Path) -> Path:
    return tmp_path / "cairn-store"


@pytest.fixture
def local(store_dir: Path) -> str:
    return f"local://{store_dir}"


@pytest.fixture
def zoo(tmp_path: Path) -> Path:
    return make_zoo(tmp_path / "zoo", big=3 << 20)


def import_zoo(zoo: Path, local: str) -> str:
    return cairn("import", str(zoo), store=local)[1].strip()


def test_stats_of_an_empty_store_count_nothing(local):
    figures = json.loads(cairn("stats", "--json", store=local)[1])
    assert figures["paths"] == figures["narBytes"] == figures["chunks"] == figures["chunkedBlobs"] == 0
    assert figures["deltaChunks"] == 0
    assert figures["logicalBytes"] == figures["packBytes"] == 0
    assert figures["storedBytes"] == figures["indexBytes"] > 0
    assert figures["narRatio"] == 0
    assert "paths          0" in cairn("stats", store=local)[1]


def test_stats_of_a_filled_store_are_plausible(zoo, local, store_dir):
    import_zoo(zoo, local)
    figures = json.loads(cairn("stats", "--json", store=local)[1])
    file_bytes = sum(p.stat().st_size for p in zoo.rglob("*") if p.is_file() and not p.is_symlink())
    assert figures["paths"] == 1
    assert figures["narBytes"] > file_bytes
    # The zoo's distinct files once each, and its few small directory records.
    assert 0.9 * file_bytes < figures["logicalBytes"] < 1.01 * file_bytes
    assert figures["chunkedBlobs"] == 2  # big.bin and medium.bin
    assert figures["chunks"] > figures["standaloneChunks"] > 10
    packs = sum(p.stat().st_size for p in (store_dir / "packs").glob("*/*.pack"))
    assert figures["packBytes"] == packs
    assert figures["storedBytes"] == packs + os.path.getsize(store_dir / "meta" / "data.mdb")
    assert figures["narRatio"] == pytest.approx(figures["narBytes"] / figures["storedBytes"])
    text = cairn("stats", store=local)[1]
    assert "paths          1" in text and "NAR / stored" in text


def test_verify_passes_on_a_clean_store(zoo, local):
    path = import_zoo(zoo, local)
    code, out, err = cairn("verify", path, store=local)
    assert out == "" and "verified 1 paths: 0 problems" in err
    code, out, err = cairn("verify", "--all", store=local)
    assert out == "" and "verified 1 paths and" in err and "0 problems" in err


def test_verify_reports_a_flipped_pack_byte_and_fails(zoo, local, store_dir):
    path = import_zoo(zoo, local)
    flip_byte_of_chunk(store_dir, (zoo / "script.sh").read_bytes())
    code, out, err = cairn("verify", path, store=local, ok=False)
    assert code == 1
    [line] = out.splitlines()
    assert line.startswith(f"{path}: NAR cannot be rendered: chunk ")
    assert "1 problem\n" in err
    code, out, err = cairn("verify", "--all", store=local, ok=False)
    assert code == 1
    chunk_lines = [l for l in out.splitlines() if l.startswith("castore: chunk ")]
    # The flip hits one chunk of the frame, or the whole frame when it no longer decompresses.
    assert chunk_lines and all(re.search(r"b3:\S+ .*(does not match its digest|does not decompress)", l)
                               for l in chunk_lines)
    assert any(l.startswith(f"{path}: ") for l in out.splitlines())


def test_verify_refuses_to_guess_what_to_check(local):
    code, _, err = cairn("verify", store=local, ok=False)
    assert code == 1 and err.startswith("cairn: error: give either store paths or --all")


@interop
def test_verify_checks_signatures_of_a_path_copied_from_nix(tmp_path, local):
    top, _ = build_closure(tmp_path, f'dep = sh "cairn-verify-dep" "echo dep-{os.getpid()} > $out";',
                           'sh "cairn-verify-top" "/bin/mkdir $out; echo ${dep} > $out/dep"')
    key_file, right = new_key(tmp_path, "cairn-test-1")
    nix("nix", "store", "sign", "--key-file", str(key_file), "--recursive", top)
    wrong = str(SecretKey.generate("cairn-test-1").public_key())
    cairn("copy", top, store=local)

    code, out, err = cairn("verify", "--all", "--trusted-public-keys", right, store=local)
    assert out == "" and "verified 2 paths" in err and "0 problems" in err
    code, out, err = cairn("verify", top, "--trusted-public-keys", f"{wrong} other-1:{right.split(':')[1]}",
                           store=local, ok=False)
    assert code == 1
    assert out == f"{top}: no valid signature by a trusted key (cairn-test-1, other-1); has 1 signature(s)\n"


@interop
def test_verify_accepts_unsigned_content_addressed_paths_made_by_nix_when_their_ca_checks(tmp_path, local):
    tree = tmp_path / f"ca-tree-{os.getpid()}"
    (tree / "sub").mkdir(parents=True)
    (tree / "sub" / "file").write_text(f"ca {os.getpid()}\n")
    flat = tmp_path / f"ca-flat-{os.getpid()}"
    flat.write_text(f"flat {os.getpid()}\n")
    paths = [nix("nix-store", "--add", str(tree)).decode().strip(),
             nix("nix-store", "--add-fixed", "sha256", str(flat)).decode().strip(),
             nix("nix-instantiate", "--eval", "--read-write-mode", "-E",
                 f'builtins.toFile "ca-text-{os.getpid()}" "text {os.getpid()}"').decode().strip('"\n')]
    cairn("copy", *paths, store=local)
    key = str(SecretKey.generate("nobody-1").public_key())  # it signed nothing

    code, out, err = cairn("verify", *paths, "--trusted-public-keys", key, store=local)
    assert out == "" and "verified 3 paths" in err and "0 problems" in err

    with api.open_store(local) as store:  # the same contents under a CA that does not give the path
        info = store.pathinfo.get(StorePath.parse(paths[0]).digest)
        wrong = info.ca._replace(hash=NixHash(HashAlgo.SHA256, bytes(32)))
        store.pathinfo.put(info._replace(ca=wrong))
    code, out, err = cairn("verify", paths[0], "--trusted-public-keys", key, store=local, ok=False)
    assert code == 1 and out.startswith(f"{paths[0]}: no valid signature by a trusted key (nobody-1)")
    assert "does not certify it" in out


def test_memory_blobs_report_usage_and_a_tampered_blob():
    from castore.blobs.memory import MemoryBlobService

    blobs = MemoryBlobService()
    with blobs.open_write() as w:
        w.write(b"hello")
        digest = w.close()
    assert blobs.usage().chunks == blobs.usage().standalone_chunks == 1
    assert list(blobs.verify_all()) == []
    blobs._blobs[bytes(digest)] = b"jello"
    [error] = blobs.verify_all()
    assert str(digest) in str(error)
