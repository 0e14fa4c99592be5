"""Versioned schema migrations, kept as SQL files per backend and applied in order on open.

A file `NNNN_name.sql` is version NNNN. Opening a database applies the versions it lacks, in
one transaction under an advisory lock, and records each in `schema_version`: many processes
opening one database at once apply every migration exactly once, and a failed migration
leaves the schema as it was.
"""

from __future__ import annotations

import re
from importlib import resources

import psycopg

from castore.errors import BackendError

LOCK = 0x636169726E  # "cairn": the advisory lock that serialises migrations
_FILE = re.compile(r"(\d{4})_\w+\.sql")


def postgres_migrations() -> list[tuple[int, str, str]]:
    """(version, file name, SQL) of every PostgreSQL migration shipped, in version order."""
    found = []
    for entry in (resources.files(__package__) / "postgres").iterdir():
        match = _FILE.fullmatch(entry.name)
        if match:
            found.append((int(match[1]), entry.name, entry.read_text()))
    found.sort()
    return found


def migrate_postgres(conn: psycopg.Connection) -> int:
    """Apply the migrations the database lacks; the schema version it is at afterwards."""
    migrations = postgres_migrations()
    with conn.transaction():
        conn.execute("SELECT pg_advisory_xact_lock(%s)", [LOCK])
        conn.execute("CREATE TABLE IF NOT EXISTS schema_version ("
                     " version integer PRIMARY KEY, name text NOT NULL,"
                     " applied_at timestamptz NOT NULL DEFAULT now())")
        current = conn.execute("SELECT coalesce(max(version), 0) FROM schema_version").fetchone()[0]
        latest = migrations[-1][0] if migrations else 0
        if current > latest:
            raise BackendError(f"the database's schema is version {current}, newer than this Cairn "
                               f"knows ({latest}): upgrade Cairn")
        for version, name, text in migrations:
            if version > current:
                conn.execute(text.encode())
                conn.execute("INSERT INTO schema_version (version, name) VALUES (%s, %s)", [version, name])
    return max(current, latest)
