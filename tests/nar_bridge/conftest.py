"""A real `cairn nar-bridge` on loopback (a subprocess), plain HTTP calls to it, and test uploads."""

from __future__ import annotations

import http.client
import os
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import pytest

from store import api
from store.narinfo import NarInfo
from store.pathinfo.model import PathInfo
from store.storepath import StorePath
from nar_bridge.names import NarFile
from tests.services.process import stop

CAIRN = str(Path(sys.executable).parent / "cairn")
START_TIMEOUT = 20.0


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class Reply:
    status: int
    headers: dict[str, str]
    body: bytes


class Bridge:
    """One `cairn nar-bridge` process; restart() keeps its store, port and arguments."""

    def __init__(self, store: str, args: list[str], log: Path) -> None:
        self.store = store
        self.args = args
        self.port = free_port()
        self._log = log
        self._proc: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> Bridge:
        with open(self._log, "ab") as log:
            self._proc = subprocess.Popen(
                [CAIRN, "nar-bridge", "--listen", f"127.0.0.1:{self.port}", "--store", self.store, *self.args],
                stdout=log, stderr=log)
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            if self._proc.poll() is not None:
                raise AssertionError(f"nar-bridge exited: {self._log.read_text()}")
            try:
                if self.request("GET", "/nix-cache-info").status == 200:
                    return self
            except OSError:
                time.sleep(0.05)
        raise AssertionError(f"nar-bridge did not start: {self._log.read_text()}")

    def stop(self) -> None:
        if self._proc is not None:
            stop(self._proc)
        self._proc = None

    def restart(self) -> None:
        self.stop()
        self.start()

    def log_text(self) -> str:
        return self._log.read_text(errors="replace")

    def request(self, method: str, path: str, body: bytes | None = None,
                headers: dict[str, str] | None = None) -> Reply:
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=60)
        try:
            conn.request(method, path, body=body, headers=headers or {})
            response = conn.getresponse()
            return Reply(response.status, {k.lower(): v for k, v in response.getheaders()}, response.read())
        finally:
            conn.close()

    def get(self, path: str, **headers: str) -> Reply:
        return self.request("GET", path, headers={k.replace("_", "-"): v for k, v in headers.items()})

    def put(self, path: str, body: bytes, headers: dict[str, str] | None = None) -> Reply:
        return self.request("PUT", path, body, headers)


@pytest.fixture
def start_bridge(tmp_path: Path) -> Iterator:
    """start_bridge(store_url=None, *args): a running bridge (a fresh local store by default)."""
    started: list[Bridge] = []

    def start(store: str | None = None, *args: str) -> Bridge:
        n = len(started)
        bridge = Bridge(store or f"local://{tmp_path}/bridge-store-{n}", list(args), tmp_path / f"bridge-{n}.log")
        started.append(bridge.start())
        return bridge

    yield start
    for bridge in started:
        bridge.stop()


@pytest.fixture
def nix_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """Call it for a fresh ~/.cache of Nix: Nix remembers the narinfos it looked up and those it uploaded."""
    made: list[Path] = []

    def fresh() -> Path:
        cache = tmp_path / f"xdg-cache-{len(made)}"
        made.append(cache)
        monkeypatch.setenv("XDG_CACHE_HOME", str(cache))
        return cache

    fresh()
    return fresh


@dataclass
class Upload:
    """A path ready to upload: its NAR and the narinfo Nix would send with an uncompressed NAR."""

    info: PathInfo
    nar: bytes

    def narinfo(self, nar_file: NarFile, **changes) -> str:
        fields = dict(store_path=self.info.store_path, url=nar_file.url, nar_hash=self.info.nar_sha256,
                      nar_size=self.info.nar_size, compression=nar_file.compression,
                      references=self.info.references)
        fields.update(changes)
        return NarInfo(**fields).render()

    @property
    def narinfo_path(self) -> str:
        return f"/{self.info.store_path.hash_part}.narinfo"


def make_upload(tree: Path) -> Upload:
    """Import `tree` as `nix-store --add` would, into a scratch store, and render its NAR."""
    with api.open_store("memory://") as scratch:
        info = api.import_path(scratch, tree)
        return Upload(info, b"".join(api.dump(scratch, info.store_path)))


def other_path(upload: Upload, n: int) -> StorePath:
    """A store path that is not the upload's (its digest differs in the last byte)."""
    digest = upload.info.store_path.digest
    return StorePath(digest[:-1] + bytes([digest[-1] ^ n]), upload.info.store_path.name)


def with_references(upload: Upload, path: StorePath, *references: StorePath) -> Upload:
    """The same contents under another store path that claims these references."""
    info = upload.info
    return Upload(PathInfo(path, info.node, info.nar_size, info.nar_sha256, references), upload.nar)


def small_tree(root: Path, tag: str) -> Path:
    root.mkdir(parents=True)
    (root / "hello.txt").write_text(f"hello {tag}\n")
    (root / "bin").mkdir()
    (root / "bin" / "run").write_text("#!/bin/sh\necho run\n")
    os.chmod(root / "bin" / "run", 0o755)
    os.symlink("hello.txt", root / "link")
    return root
