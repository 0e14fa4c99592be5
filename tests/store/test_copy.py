"""`cairn copy --from URL --to URL`: closures between Cairn stores, checked against `nix-store --dump`."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from store import api
from store.copy import closure_of, copy_paths
from store.url import open_store
from tests.fuse.mounts import daemon
from tests.store.nixtool import build_closure, interop, nix

ROOT = Path(__file__).resolve().parent.parent.parent


def cairn(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "store.cli", *args], capture_output=True, text=True, cwd=ROOT)


@pytest.fixture(scope="module")
def closure(tmp_path_factory) -> tuple[str, list[str]]:
    return build_closure(tmp_path_factory.mktemp("closure"), '''
        dep = sh "copy-dep" "echo dep > $out";
        mid = sh "copy-mid" "/bin/mkdir $out; echo ${dep} > $out/dep; /bin/ln -s ${dep} $out/link";''',
        'sh "copy-top" "/bin/mkdir -p $out/bin; echo ${mid} > $out/bin/mid; echo $out > $out/self"')


@interop
def test_copy_between_stores_sends_only_what_is_missing_and_resumes(closure, tmp_path, zoo):
    top, paths = closure
    source, dest = f"local://{tmp_path}/a", f"local://{tmp_path}/b"
    assert cairn("copy", "--store", source, top).returncode == 0  # from the local Nix store
    dep = next(p for p in paths if p.endswith("-copy-dep"))

    first = cairn("copy", "--from", source, "--to", dest, dep)  # a copy stopped after one path
    assert first.returncode == 0 and first.stdout.split() == [dep]
    rest = cairn("copy", "--from", source, "--to", dest, "--all")
    assert rest.returncode == 0, rest.stderr
    assert sorted(rest.stdout.split()) == sorted(set(paths) - {dep})
    assert "1 already there" in rest.stderr
    again = cairn("copy", "--from", source, "--to", dest, top)
    assert again.stdout == "" and "copied 0 paths" in again.stderr and "3 already there" in again.stderr

    with open_store(dest) as store:
        for path in paths:
            info = api.path_info(store, api.parse_store_path(path))
            assert b"".join(api.dump(store, info.store_path)) == nix("nix-store", "--dump", path)
            original = api.path_info(open_store(source), info.store_path)
            assert (info.references, info.signatures, info.deriver) == \
                (original.references, original.signatures, original.deriver)


def test_a_blob_the_destination_has_is_not_sent(tmp_path, zoo):
    with open_store(f"local://{tmp_path}/a") as source, open_store(f"local://{tmp_path}/b") as dest:
        info = api.import_path(source, zoo)
        api.import_path(dest, zoo / "nested")  # some of the same blobs, another path
        report = copy_paths(source, dest, closure_of(source, [info.store_path]))
        assert report.copied == [info.store_path]
        assert report.blobs_present >= 2 and report.blobs_sent >= 1
        assert b"".join(api.dump(dest, info.store_path)) == b"".join(api.dump(source, info.store_path))


def test_copy_into_a_daemon_over_grpc(tmp_path, zoo):
    with open_store(f"local://{tmp_path}/a") as source:
        info = api.import_path(source, zoo)
        expected = b"".join(api.dump(source, info.store_path))
    with daemon(f"local://{tmp_path}/served", tmp_path / "d.sock") as url:
        done = cairn("copy", "--from", f"local://{tmp_path}/a", "--to", url, "--all")
        assert done.returncode == 0, done.stderr
        with open_store(url) as remote:
            assert b"".join(api.dump(remote, info.store_path)) == expected


@pytest.mark.parametrize("args, message", [
    (["--all"], "with --from"),
    (["--from", "memory://"], "either store paths or --all"),
    (["--from", "memory://", "/nix/store/" + "a" * 32 + "-x"], "not in the source store"),
])
def test_copy_refuses_bad_requests_in_one_line(args, message, tmp_path):
    done = cairn("copy", "--store", f"local://{tmp_path}/s", *args)
    assert done.returncode == 1 and message in done.stderr and done.stderr.count("\n") == 1
