"""PathInfoService.update across processes (store/pathinfo/local.py): two processes sharing one
store, the embedded one or PostgreSQL (two daemons of a cluster), each update a path's record
again and again, and the store's lock keeps every update. (The admission check built on it:
tests/store/test_daemon_admission.py.)"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from castore.digest import EMPTY_DIGEST
from castore.nodes import FileNode
from store.pathinfo.model import PathInfo
from store.storepath import StorePath
from store.url import open_store

ROOT_DIR = Path(__file__).resolve().parents[2]
PATH = StorePath.from_basename("7nn1mg7sbg5c7rs9nzcfks9almxk6m5x-test")
UPDATES = 12

WRITER = """
import sys
from store.signing import SecretKey
from store.storepath import StorePath
from store.url import open_store

url, name = sys.argv[1], sys.argv[2]
digest = StorePath.from_basename("7nn1mg7sbg5c7rs9nzcfks9almxk6m5x-test").digest
keys = [SecretKey.generate(f"{name}-{i}") for i in range(int(sys.argv[3]))]
with open_store(url) as store:
    print("ready", flush=True)
    sys.stdin.readline()
    for key in keys:
        store.pathinfo.update(digest, lambda existing, key=key: existing.with_signatures(
            (key.sign(existing.fingerprint()),)))
print("done", flush=True)
"""


@pytest.fixture(params=["local", "postgres"])
def url(request, tmp_path: Path) -> str:
    if request.param == "local":
        return f"local://{tmp_path}/store"
    return f"{request.getfixturevalue('postgres_url')}&packs=file://{tmp_path}/packs"


def test_two_processes_updating_one_path_lose_no_update(url: str) -> None:
    info = PathInfo(PATH, FileNode(b"", EMPTY_DIGEST, 0), 112, bytes(32))
    with open_store(url) as store:
        store.pathinfo.put(info)
    writers = [subprocess.Popen([sys.executable, "-c", WRITER, url, f"writer{w}", str(UPDATES)], cwd=ROOT_DIR,
                                stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True) for w in range(2)]
    for writer in writers:
        assert writer.stdout.readline() == "ready\n"
    for writer in writers:  # both start at once
        writer.stdin.write("go\n")
        writer.stdin.flush()
    for writer in writers:
        assert writer.stdout.readline() == "done\n"
        assert writer.wait(60) == 0
    with open_store(url) as store:
        signers = {s.key_name for s in store.pathinfo.get(PATH.digest).signatures}
    assert signers == {f"writer{w}-{i}" for w in range(2) for i in range(UPDATES)}


def test_an_update_inside_a_batch_is_durable_before_the_lock_goes(tmp_path: Path) -> None:
    """Another process reads the update while this one's batch is still open."""
    url = f"local://{tmp_path}/store"
    info = PathInfo(PATH, FileNode(b"", EMPTY_DIGEST, 0), 112, bytes(32))
    with open_store(url) as store, store.castore.batch():
        assert store.pathinfo.update(PATH.digest, lambda existing: info) == info
        seen = subprocess.run([sys.executable, "-c", READER, url], cwd=ROOT_DIR, capture_output=True, text=True,
                              check=True).stdout
    assert seen == "found\n"


READER = """
import sys
from store.storepath import StorePath
from store.url import open_store
with open_store(sys.argv[1]) as store:
    digest = StorePath.from_basename("7nn1mg7sbg5c7rs9nzcfks9almxk6m5x-test").digest
    print("found" if store.pathinfo.get(digest) is not None else "missing")
"""
