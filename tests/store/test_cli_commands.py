"""`cairn --version`, `list`, `dump` of a path inside a store path (against `nix-store --dump`), one error
prefix, `castore cat` of a directory, and `archive` of something that is not a binary cache."""

from __future__ import annotations

import json
import os
import subprocess
import time
from importlib.metadata import version

import pytest

from tests.store.nixtool import interop, nix
from tests.store.test_cli_interop import CAIRN, cairn


@pytest.fixture
def local(tmp_path) -> str:
    return f"local://{tmp_path}/cairn-store"


def one_error_line(done: subprocess.CompletedProcess, message: str) -> None:
    err = done.stderr.decode()
    assert done.returncode == 1, err
    assert err.count("\n") == 1 and err.startswith("cairn: error: ") and "error: error" not in err, err
    assert message in err, err


def test_version_is_the_installed_package_version():
    done = subprocess.run([CAIRN, "--version"], capture_output=True, check=True)
    assert done.stdout.decode() == f"cairn {version('cairn')}\n"


def test_list_gives_every_path_with_its_nar_size_and_registration_time(tmp_path, local):
    before = int(time.time())
    paths = {}
    for name in ("one", "two"):
        (tmp_path / name).write_text(name * 10)
        path = cairn("import", str(tmp_path / name), store=local).stdout.decode().strip()
        paths[path] = json.loads(cairn("path-info", "--json", path, store=local).stdout)[0]["narSize"]
    after = int(time.time())
    listed = json.loads(cairn("list", "--json", store=local).stdout)
    assert {e["path"]: e["narSize"] for e in listed} == paths
    assert all(before <= e["registrationTime"] <= after for e in listed)
    lines = [line.split("\t") for line in cairn("list", store=local).stdout.decode().splitlines()]
    assert {path: int(size) for path, size, _ in lines} == paths
    for *_, when in lines:
        assert before <= time.mktime(time.strptime(when, "%Y-%m-%dT%H:%M:%SZ")) - time.timezone <= after
    assert json.loads(cairn("list", "--json", store="memory://").stdout) == []


@interop
def test_dump_inside_a_store_path_is_byte_identical_to_nix_store_dump(zoo, local):
    path = nix("nix-store", "--add", str(zoo)).decode().strip()
    assert cairn("import", str(zoo), store=local).stdout.decode().strip() == path
    for below in ("nested", "nested/deeper/deepest/leaf.txt", "script.sh", "empty-file", "empty-dir", "rel-link",
                  "dangling", "dir-link", "ünïcödé ñame", os.fsdecode(b"latin1-\xe9"), "nested/", ""):
        inside = f"{path}/{below}"
        assert cairn("dump", inside, store=local).stdout == nix("nix-store", "--dump", inside), below
    one_error_line(cairn("dump", f"{path}/script.sh/x", store=local, check=False), "script.sh is not a directory")
    one_error_line(cairn("dump", f"{path}/dir-link/x", store=local, check=False), "dir-link is not a directory")
    one_error_line(cairn("dump", f"{path}/nested/nope", store=local, check=False), "nested/nope does not exist")
    one_error_line(cairn("dump", "/nix/storex/abc", store=local, check=False), "not in /nix/store")


@interop
def test_copy_of_a_path_nix_lacks_has_one_error_prefix(local):
    one_error_line(cairn("copy", "/nix/store/00bgd045z0d4icpbc2yyz4gx48ak44la-missing", store=local, check=False),
                   "is not valid")


def test_castore_cat_of_a_directory_is_an_error(zoo, local):
    root = cairn("castore", "import", str(zoo / "nested"), store=local).stdout.decode().split()[1]
    done = cairn("castore", "cat", root, store=local, check=False)
    assert done.stdout == b""
    one_error_line(done, "is a directory")
    leaf = [line.split()[1] for line in cairn("castore", "ls", root, store=local).stdout.decode().splitlines()
            if line.endswith("\ta")][0]
    assert cairn("castore", "cat", leaf, store=local).stdout == b"a" * 100


def test_archive_of_something_that_is_not_a_binary_cache_is_an_error(tmp_path, local):
    (tmp_path / "plain").mkdir()
    (tmp_path / "plain" / "x.narinfo").write_text("not really\n")
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "nix-cache-info").write_text("StoreDir: /gnu/store\n")
    for source, message in ((f"file://{tmp_path}/does/not/exist", "no such directory"),
                            (f"file://{tmp_path}/plain", "no such file"),
                            (f"file://{tmp_path}/other", "binary cache for '/gnu/store'"),
                            ("http://127.0.0.1:1/cache", "nix-cache-info")):
        done = cairn("archive", source, store=local, check=False)
        one_error_line(done, message)
        assert "archived" not in done.stderr.decode()
