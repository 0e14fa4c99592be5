"""`cairn import|dump|path-info|copy` against the real C++ Nix (nix-store, nix-hash, nix-build)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from store.nixhash import NixHash
from tests.store.nixtool import build_closure, interop, new_key, nix

CAIRN = str(Path(sys.executable).parent / "cairn")


def cairn(*args: str, store: str, check: bool = True) -> subprocess.CompletedProcess:
    done = subprocess.run([CAIRN, *args, "--store", store], capture_output=True)
    if check and done.returncode:
        raise AssertionError(f"cairn {' '.join(args)} failed: {done.stderr.decode()}")
    return done


@pytest.fixture
def local(tmp_path) -> str:
    return f"local://{tmp_path}/cairn-store"


def roots(zoo: Path) -> list[Path]:
    """The zoo and single-entry roots of every kind."""
    single = zoo.parent / "singles"
    single.mkdir()
    (single / "file").write_text("Hello World!")
    (single / "exe").write_text("#!/bin/sh\n")
    os.chmod(single / "exe", 0o755)
    os.symlink("/nix/store/somewhereelse", single / "link")
    (single / "emptydir").mkdir()
    return [zoo, single / "file", single / "exe", single / "link", single / "emptydir"]


@interop
def test_import_and_dump_match_nix(zoo, local):
    for root in roots(zoo):
        expected_path = nix("nix-store", "--add", str(root)).decode().strip()
        out = cairn("import", str(root), store=local)
        assert out.stdout.decode().strip() == expected_path
        dumped = cairn("dump", expected_path, store=local).stdout
        assert dumped == nix("nix-store", "--dump", str(root))
        info = json.loads(cairn("path-info", "--json", expected_path, store=local).stdout)[0]
        nix_hash = nix("nix-hash", "--type", "sha256", "--base32", str(root)).decode().strip()
        assert info["narHash"] == f"sha256:{nix_hash}"
        assert info["narSize"] == len(dumped)
        assert info["ca"].startswith("fixed:r:sha256:")


@interop
def test_copy_keeps_references_deriver_signatures_and_ca(tmp_path, local):
    top, _ = build_closure(tmp_path, f'''
        dep = sh "cairn-copy-dep" "echo dep-{os.getpid()} > $out";
        mid = sh "cairn-copy-mid" "/bin/mkdir $out; echo ${{dep}} > $out/dep; /bin/ln -s ${{dep}} $out/link";''',
        'sh "cairn-copy-top" "/bin/mkdir -p $out/bin; echo ${mid} > $out/bin/mid; echo $out > $out/self"')
    key, _ = new_key(tmp_path, "cairn-test-1")
    nix("nix", "store", "sign", "--key-file", str(key), "--recursive", top)
    theirs = {i["path"]: i for i in json.loads(nix("nix", "path-info", "--json", "--recursive", top))}
    assert len(theirs) == 3

    out = cairn("copy", top, store=local)
    assert sorted(out.stdout.decode().split()) == sorted(theirs)
    assert "copied 3 paths" in out.stderr.decode()
    ours = {i["path"]: i for i in json.loads(cairn("path-info", "--json", *theirs, store=local).stdout)}
    for path, meta in theirs.items():
        mine = ours[path]
        assert str(NixHash.parse(meta["narHash"])) == mine["narHash"]
        assert mine["narSize"] == meta["narSize"]
        assert sorted(mine["references"]) == sorted(meta["references"])
        assert mine["deriver"] == meta["deriver"]
        assert sorted(mine["signatures"]) == sorted(meta["signatures"])
        assert cairn("dump", path, store=local).stdout == nix("nix-store", "--dump", path)
    again = cairn("copy", top, store=local)
    assert "copied 0 paths" in again.stderr.decode() and "3 already present" in again.stderr.decode()


@pytest.mark.parametrize("args, message", [
    (["dump", "/nix/store/00bgd045z0d4icpbc2yyz4gx48ak44la-missing"], "not in the store"),
    (["dump", "/nix/store/not-a-store-path"], "invalid store path"),
    (["path-info", "/tmp/elsewhere"], "not in /nix/store"),
    (["import", "/does/not/exist"], "No such file"),
    (["castore", "export", "b3:AAAA", "/tmp/x"], "digest"),
    (["dump", "/nix/store/eeeeeeeeeeeeeeeeeeeeeeeeeeeeeeee-bad-chars"], "nixbase32"),
])
def test_bad_input_gives_one_line_and_nonzero_exit(local, args, message):
    done = cairn(*args, store=local, check=False)
    assert done.returncode != 0
    err = done.stderr.decode()
    assert err.count("\n") == 1 and err.startswith("cairn: error:"), err
    assert message.lower() in err.lower()
    assert "Traceback" not in err


def test_dump_into_a_closed_pipe_stops_quietly(tmp_path, local):
    tree = tmp_path / "big"
    tree.mkdir()
    (tree / "data").write_bytes(os.urandom(4 << 20))
    path = cairn("import", str(tree), store=local).stdout.decode().strip()
    done = subprocess.run(f"'{CAIRN}' dump --store '{local}' {path} | head -c 10 > /dev/null; "
                          "echo ${PIPESTATUS[0]}", shell=True, executable="/bin/bash", capture_output=True)
    assert done.stdout.decode().strip() == "141"
    assert done.stderr == b""
