"""A Cairn cluster on one machine: PostgreSQL, SeaweedFS, and stateless `cairn daemon`s and
`cairn nar-bridge`s in front of one database and one bucket.

`make cluster` runs this module (`python -m tests.services.cluster`): it starts everything,
prints the addresses and the `--store` URL, and stops it all on Ctrl-C. The tests start the
same processes with the same code (`serving`), over the session's PostgreSQL and SeaweedFS
(`cluster` fixture) or private ones (`running_cluster`), so what `make cluster` runs is what
the tests prove.
"""

from __future__ import annotations

import functools
import http.client
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
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterator

import pytest

from tests.services.postgres import PostgresServer, running_postgres
from tests.services.seaweed import BUCKET, SeaweedFS, running_seaweedfs
from tests.services.process import stop

CAIRN = str(Path(sys.executable).parent / "cairn")
REPLICAS = 2
START_TIMEOUT = 30.0


@dataclass
class Cluster:
    store: str
    """`postgresql://...?packs=s3://...`: the URL any cairn command opens the cluster with."""
    env: dict[str, str]
    """The environment a process needs to reach the object store (AWS_*), on top of os.environ."""
    directory: Path
    """Sockets and logs of the replicas."""
    daemons: list[str] = field(default_factory=list)
    """The gRPC URL of each `cairn daemon`."""
    bridges: list[str] = field(default_factory=list)
    """The http://host:port of each `cairn nar-bridge`."""

    def cairn(self, *args: str, **kw) -> subprocess.CompletedProcess:
        """Run `cairn ARGS` with the object store's environment (the caller adds --store)."""
        return subprocess.run([CAIRN, *args], env={**os.environ, **self.env}, capture_output=True, **kw)

    def popen(self, *args: str, **kw) -> subprocess.Popen:
        return subprocess.Popen([CAIRN, *args], env={**os.environ, **self.env}, **kw)


def store_url(postgres: PostgresServer, weed: SeaweedFS, database: str | None = None) -> str:
    """A cluster URL: a fresh database (or `database`) and a fresh prefix of the bucket."""
    metadata = postgres.url(database) if database else postgres.create_database()
    return f"{metadata}&packs=s3://{BUCKET}/cluster-{uuid.uuid4().hex}"


@contextmanager
def serving(store: str, env: dict[str, str], replicas: int = REPLICAS) -> Iterator[Cluster]:
    """`replicas` daemons and nar-bridges over `store`; each stopped on exit."""
    with ExitStack() as stack:
        # A short directory: a unix socket's path must fit in 108 bytes.
        directory = Path(tempfile.mkdtemp(prefix="cairn-cluster-", dir="/tmp"))
        stack.callback(shutil.rmtree, directory, ignore_errors=True)
        cluster = Cluster(store, env, directory)
        for n in range(replicas):
            sock = directory / f"daemon-{n}.sock"
            stack.enter_context(_replica(cluster, f"daemon-{n}", ["daemon", "--listen", f"grpc+unix://{sock}"],
                                         sock.exists))
            cluster.daemons.append(f"grpc+unix://{sock}")
        for n in range(replicas):
            port = _free_port()
            stack.enter_context(_replica(cluster, f"bridge-{n}", ["nar-bridge", "--listen", f"127.0.0.1:{port}",
                                                                "--nar-cache", str(directory / f"nars-{n}")],
                                         functools.partial(_answers, port)))
            cluster.bridges.append(f"http://127.0.0.1:{port}")
        yield cluster


@contextmanager
def running_cluster(replicas: int = REPLICAS) -> Iterator[Cluster]:
    """A cluster on a PostgreSQL and a SeaweedFS of its own (what `make cluster` runs)."""
    with running_postgres() as postgres, running_seaweedfs() as weed:
        with serving(store_url(postgres, weed), weed.env, replicas) as cluster:
            yield cluster


@pytest.fixture
def cluster(postgres_server: PostgresServer, seaweedfs: SeaweedFS,
            monkeypatch: pytest.MonkeyPatch) -> Iterator[Cluster]:
    """Two daemons and two bridges on a fresh database and bucket prefix of the session servers;
    the test's own environment reaches the object store too (AWS_* set)."""
    for name, value in seaweedfs.env.items():
        monkeypatch.setenv(name, value)
    with serving(store_url(postgres_server, seaweedfs), seaweedfs.env) as running:
        yield running


@contextmanager
def _replica(cluster: Cluster, name: str, args: list[str], ready: Callable[[], bool]) -> Iterator[subprocess.Popen]:
    """One `cairn` server process, started until `ready()`, stopped with SIGTERM on exit."""
    log = cluster.directory / f"{name}.log"
    with open(log, "wb") as out:
        process = cluster.popen(*args, "--store", cluster.store, stdin=subprocess.DEVNULL,
                                stdout=out, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + START_TIMEOUT
        while not ready():
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"{name} did not start (exit {process.poll()}):\n{log.read_text()[-3000:]}")
            time.sleep(0.05)
        yield process
    finally:
        stop(process)


def _answers(port: int) -> bool:
    try:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
        try:
            conn.request("GET", "/nix-cache-info")
            return conn.getresponse().status == 200
        finally:
            conn.close()
    except OSError:
        return False


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def main() -> int:
    """`make cluster`: start, print where everything is, wait for Ctrl-C, stop everything."""
    for signum in (signal.SIGINT, signal.SIGTERM):  # `kill` stops it as Ctrl-C does, even started with `&`
        signal.signal(signum, signal.default_int_handler)
    try:
        with running_cluster() as cluster:
            env = " ".join(f"{name}={value}" for name, value in cluster.env.items())
            print("cairn cluster: PostgreSQL + SeaweedFS (S3), data thrown away on exit\n"
                  + "".join(f"  daemon      {url}\n" for url in cluster.daemons)
                  + "".join(f"  nar-bridge  {url}\n" for url in cluster.bridges)
                  + f"  logs        {cluster.directory}\n\n"
                  f"any cairn command on the cluster:\n  {env} \\\n    cairn COMMAND --store '{cluster.store}'\n"
                  "Ctrl-C stops everything.", flush=True)
            while True:
                time.sleep(3600)
    except KeyboardInterrupt:
        print("\nstopped", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
