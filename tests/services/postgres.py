"""A real PostgreSQL server for the tests: Debian's `postgresql`, started once per session.

initdb into a temporary directory (as the `postgres` user when the tests run as root: the
server refuses to run as root), fsync off, listening only on a unix socket in that directory.
Each test gets a database of its own, copied from an empty template (a few milliseconds).

A test module uses `postgres_url` (a fresh database's URL) or `postgres_server` (the server,
to make more databases or to stop and start it); tests/conftest.py registers this module as
a plugin so every module sees the same session server.
"""

from __future__ import annotations

import glob
import itertools
import os
import pwd
import shutil
import subprocess
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

import psycopg
import pytest

SETTINGS = {
    "listen_addresses": "''",  # no TCP at all
    "max_connections": "200",
    "shared_buffers": "128MB",
}
FAST = {"fsync": "off", "synchronous_commit": "off", "full_page_writes": "off"}
"""For tests: nothing waits for the disk (a crash of the test machine loses a throwaway cluster)."""


def binaries() -> Path | None:
    """The newest installed server's bin directory, or None (then the tests using it skip)."""
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/pg_ctl"), key=lambda p: int(Path(p).parent.parent.name))
    return Path(found[-1]).parent if found else None


class PostgresServer:
    """A running cluster under `root` (data in root/data, the socket in root)."""

    USER = "postgres"
    """The database superuser initdb creates; every test connects as it (trust on the socket)."""

    def __init__(self, root: Path, bin_dir: Path, durable: bool) -> None:
        self.root = root
        self.durable = durable
        self.data = root / "data"
        self._bin = bin_dir
        self._numbers = itertools.count()

    def _run(self, tool: str, *args: str) -> None:
        command = [str(self._bin / tool), *args]
        if os.geteuid() == 0:
            command = ["runuser", "-u", "postgres", "--", *command]
        done = subprocess.run(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, timeout=120)
        if done.returncode:
            log = self.root / "log"
            raise RuntimeError(f"{tool} {' '.join(args)} failed: {done.stderr.strip()}"
                               + (f"\nserver log:\n{log.read_text()[-2000:]}" if log.exists() else ""))

    def init(self) -> None:
        self._run("initdb", "-D", str(self.data), "-U", self.USER, "-A", "trust", "-E", "UTF8",
                  "--locale=C", "--no-sync", "--no-instructions")
        settings = {**SETTINGS, **({} if self.durable else FAST), "unix_socket_directories": f"'{self.root}'"}
        with open(self.data / "postgresql.conf", "a") as conf:
            conf.writelines(f"{name} = {value}\n" for name, value in settings.items())

    def start(self) -> None:
        self._run("pg_ctl", "start", "-w", "-D", str(self.data), "-l", str(self.root / "log"))

    def stop(self, mode: str = "fast") -> None:
        self._run("pg_ctl", "stop", "-w", "-m", mode, "-D", str(self.data))

    def url(self, database: str = "postgres") -> str:
        return f"postgresql://{self.USER}@/{database}?host={self.root}"

    def create_database(self) -> str:
        """A new empty database; its URL."""
        name = f"test_{next(self._numbers)}"
        with psycopg.connect(f"host={self.root} user={self.USER} dbname=postgres", autocommit=True) as conn:
            conn.execute(f"CREATE DATABASE {name} TEMPLATE template0 STRATEGY FILE_COPY")
        return self.url(name)


@contextmanager
def running_postgres(durable: bool = False) -> Iterator[PostgresServer]:
    """A fresh cluster, started; stopped and removed afterwards. `durable` keeps PostgreSQL's
    default fsync settings (for benchmarks that compare with a store that syncs)."""
    bin_dir = binaries()
    if bin_dir is None:
        pytest.skip("PostgreSQL is not installed (Debian package postgresql)")
    root = Path(tempfile.mkdtemp(prefix="cairn-pg-", dir="/tmp"))  # a short path: sockets fit 108 bytes
    if os.geteuid() == 0:
        owner = pwd.getpwnam("postgres")
        os.chown(root, owner.pw_uid, owner.pw_gid)
    server = PostgresServer(root, bin_dir, durable)
    try:
        server.init()
        server.start()
        yield server
    finally:
        if (server.data / "postmaster.pid").exists():
            server.stop("immediate")
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    with running_postgres() as server:
        yield server


@pytest.fixture
def postgres_url(postgres_server: PostgresServer) -> str:
    """`postgresql://postgres@/test_N?host=/tmp/cairn-pg-...`: a database of this test's own."""
    return postgres_server.create_database()
