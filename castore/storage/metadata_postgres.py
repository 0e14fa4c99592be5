"""The metadata store in PostgreSQL: many processes on many machines share one database.

The only module (with migrations/) that imports psycopg. Layout: each declared Table is its own
relation `records."<name>"` (key bytea PRIMARY KEY, value bytea), created on first write, rather
than one generic (table, key, value) relation: its B-tree holds no repeated table name (billions
of chunk locations), each table gets its own statistics, vacuum and size, and a later GC or
index for one table (e.g. chunk locations by pack) touches only that table. An insert-only
table is written with ON CONFLICT DO NOTHING, so concurrent writers of one key keep the first
committed value; a plain one with DO UPDATE. Counters are sequences `counters."<name>"`:
unique across processes and crashes without a transaction of their own.

Reads are single statements on autocommit connections (one round trip, one snapshot); a commit
is one transaction that deletes, then inserts small batches with executemany and large ones
with COPY into a temporary table then INSERT ... SELECT ... ON CONFLICT. Rows are written in
(table name, key) order so that concurrent commits wait on each other instead of deadlocking;
a deadlock PostgreSQL still reports rolls the whole commit back, and it is retried.
"""

from __future__ import annotations

import hashlib
import threading
import time
from contextlib import contextmanager
from typing import Callable, Iterable, Iterator, Mapping, Sequence, TypeVar
from urllib.parse import parse_qsl, unquote, urlsplit

import psycopg
from psycopg import errors, sql
from psycopg_pool import ConnectionPool, PoolTimeout

from castore.errors import BackendError, ValidationError
from castore.storage.metadata import PAGE, MetadataStore, Table
from castore.storage.migrations import LOCK as MIGRATION_LOCK, migrate_postgres
from castore.storage.shared import Shared

POOL_SIZE = 8
"""Connections per store and process: callers beyond it wait up to `timeout` for one."""
TIMEOUT = 10.0
"""Seconds to connect, or to wait for a free connection, before a BackendError."""
COPY_FROM = 1_000
"""Puts per table from which a commit streams them with COPY (measured, 36 -> 24 byte records on a
unix socket: executemany 1.7 ms per 100 and 7.9 per 1,000, COPY 1.8 and 8.3; 12 vs 15 ms per
2,000, 84 vs 147 per 20,000)."""
READ_BATCH = 20_000
"""Keys per statement in get_many: a larger lookup reads in batches inside one snapshot."""
DEADLOCK_RETRIES = 5
CREATE_LOCK = MIGRATION_LOCK + 1
"""The advisory lock under which tables and counters are created."""
QUERY_PARAMETERS = {"host", "sslmode", "application_name"}
"""The URL's query parameters this store reads; the caller removes its own (packs=) first."""

T = TypeVar("T")
_shared: Shared[PostgresMetadataStore] = Shared()


def conninfo(url: str) -> str:
    """The libpq connection string of `postgresql://[user@][host][:port]/DB?host=/socket/dir`.

    Passwords stay out of URLs (they end up in process lists and logs): libpq reads them from
    PGPASSWORD or ~/.pgpass."""
    parts = urlsplit(url)
    if parts.scheme != "postgresql":
        raise ValidationError(f"not a postgresql:// URL: {url!r}")
    if parts.password is not None:
        raise ValidationError("a postgresql:// URL carries no password: set PGPASSWORD or ~/.pgpass")
    if parts.fragment:
        raise ValidationError(f"a postgresql:// URL has no #fragment: {url!r}")
    try:
        port = parts.port
    except ValueError:
        raise ValidationError(f"bad port in {url!r}") from None
    database = unquote(parts.path.removeprefix("/"))
    if not database or "/" in database:
        raise ValidationError(f"a postgresql:// URL names one database: postgresql://[user@][host][:port]/DB, "
                              f"not {url!r}")
    try:
        pairs = parse_qsl(parts.query, keep_blank_values=True, strict_parsing=bool(parts.query))
    except ValueError:
        raise ValidationError(f"bad query in {url!r}: expected name=value&...") from None
    params: dict[str, str] = {}
    for name, value in pairs:
        if name not in QUERY_PARAMETERS:
            raise ValidationError(f"unknown parameter {name!r} in {url!r} "
                                  f"(known: {', '.join(sorted(QUERY_PARAMETERS))})")
        if name in params:
            raise ValidationError(f"parameter {name!r} given twice in {url!r}")
        params[name] = value
    if parts.hostname:
        if "host" in params:
            raise ValidationError(f"{url!r} names a host twice (before the path and in ?host=)")
        params["host"] = parts.hostname
    return psycopg.conninfo.make_conninfo(
        dbname=database, user=unquote(parts.username) if parts.username else None, port=port, **params)


class PostgresMetadataStore(MetadataStore):
    @classmethod
    def open(cls, url: str, *, pool_size: int = POOL_SIZE, timeout: float = TIMEOUT) -> PostgresMetadataStore:
        """The process's store for `url` (shared: one pool per database and process), migrated
        to the schema this code knows; close() releases it. Raises ValidationError for a bad
        URL and BackendError when the server cannot be reached."""
        info = conninfo(url)
        return _shared.acquire((info, pool_size, timeout), lambda: cls(info, pool_size=pool_size, timeout=timeout))

    def __init__(self, info: str, *, pool_size: int = POOL_SIZE, timeout: float = TIMEOUT) -> None:
        """Use `open`. Connects once to migrate (so an unreachable server fails here, at once),
        then keeps a pool of at most `pool_size` connections."""
        self._key = (info, pool_size, timeout)
        self._where = _describe(info)
        self._timeout = timeout
        try:
            with psycopg.connect(info, autocommit=True, connect_timeout=_seconds(timeout)) as conn:
                migrate_postgres(conn)
        except psycopg.Error as e:
            raise self._backend_error(e) from None
        self._pool = ConnectionPool(
            info, kwargs={"autocommit": True, "connect_timeout": _seconds(timeout)}, min_size=1,
            max_size=pool_size, timeout=timeout, reconnect_timeout=timeout, open=True,
            name=f"cairn metadata {self._where}")
        self._tables: set[str] = set()  # tables this process knows exist (created or seen)
        self._tables_lock = threading.Lock()

    # -- reads -----------------------------------------------------------------------------

    def get(self, table: Table, key: bytes) -> bytes | None:
        query = sql.SQL("SELECT value FROM {} WHERE key = %b").format(_relation(table))
        rows = self._read(lambda conn: conn.execute(query, [key], binary=True).fetchall())
        return rows[0][0] if rows else None

    def get_many(self, table: Table, keys: Sequence[bytes]) -> list[bytes | None]:
        if not keys:
            return []
        query = sql.SQL("SELECT key, value FROM {} WHERE key = ANY(%b)").format(_relation(table))

        def read(conn: psycopg.Connection) -> dict[bytes, bytes]:
            found: dict[bytes, bytes] = {}
            with _snapshot(conn, len(keys) > READ_BATCH):
                for start in range(0, len(keys), READ_BATCH):
                    batch = list(keys[start:start + READ_BATCH])
                    found.update(conn.execute(query, [batch], binary=True).fetchall())
            return found

        found = self._read(read) or {}
        return [found.get(bytes(k)) for k in keys]

    def scan(self, table: Table, after: bytes = b"", limit: int = PAGE) -> list[tuple[bytes, bytes]]:
        query = sql.SQL("SELECT key, value FROM {} WHERE key > %b ORDER BY key LIMIT %b").format(_relation(table))
        return self._read(lambda conn: conn.execute(query, [after, limit], binary=True).fetchall()) or []

    def _read(self, work: Callable[[psycopg.Connection], T]) -> T | None:
        """`work`'s result, or None when the table was never written (no relation yet)."""
        try:
            return self._run(work)
        except errors.UndefinedTable:
            return None

    # -- writes ----------------------------------------------------------------------------

    def commit(self, puts: Mapping[Table, Mapping[bytes, bytes]],
               deletes: Mapping[Table, Iterable[bytes]] = {}) -> None:
        puts = {table: dict(items) for table, items in puts.items() if items}  # before anything is sent
        deletes = {table: sorted(set(keys)) for table, keys in deletes.items()}
        for items in puts.values():
            if any(not isinstance(k, bytes) or not k for k in items):
                raise ValueError("metadata keys are non-empty bytes")
        deletes = {table: keys for table, keys in deletes.items() if keys}
        self._create([*puts, *deletes])
        for attempt in range(DEADLOCK_RETRIES):
            write = _Write(puts, deletes)
            try:
                return self._run(write, retry=lambda: not write.committing)
            except errors.UndefinedTable as e:  # dropped behind this process's back
                with self._tables_lock:
                    self._tables.clear()
                raise self._backend_error(e) from None
            except errors.DeadlockDetected:
                if attempt == DEADLOCK_RETRIES - 1:
                    raise BackendError(f"PostgreSQL at {self._where}: a commit deadlocked "
                                       f"{DEADLOCK_RETRIES} times") from None
                time.sleep(0.01 * 2 ** attempt)

    def _create(self, tables: Iterable[Table]) -> None:
        """Create the relations of tables this process has not written yet. Under an advisory
        lock: two CREATE TABLE IF NOT EXISTS of one name at once can both try to create it."""
        with self._tables_lock:
            missing = sorted({t.name for t in tables} - self._tables)
        if not missing:
            return

        def create(conn: psycopg.Connection) -> None:
            with conn.transaction():
                conn.execute("SELECT pg_advisory_xact_lock(%s)", [CREATE_LOCK])
                for name in missing:
                    conn.execute(sql.SQL("CREATE TABLE IF NOT EXISTS {} (key bytea PRIMARY KEY, value bytea NOT NULL)")
                                 .format(sql.Identifier("records", _name(name))))

        self._run(create)
        with self._tables_lock:
            self._tables.update(missing)

    def next_id(self, counter: str) -> int:
        sequence = sql.Identifier("counters", _name(counter))

        def next_value(conn: psycopg.Connection) -> int:
            return conn.execute("SELECT nextval(%s::regclass)", [sequence.as_string(conn)]).fetchone()[0]

        def create_then_next(conn: psycopg.Connection) -> int:
            with conn.transaction():
                conn.execute("SELECT pg_advisory_xact_lock(%s)", [CREATE_LOCK])
                conn.execute(sql.SQL("CREATE SEQUENCE IF NOT EXISTS {} MINVALUE 0 START 0").format(sequence))
            return next_value(conn)

        try:
            return self._run(next_value)
        except errors.UndefinedTable:
            return self._run(create_then_next)

    # -- the rest --------------------------------------------------------------------------

    @contextmanager
    def try_lock(self, name: str) -> Iterator[bool]:
        """pg_try_advisory_lock on a pooled connection kept for the length of the `with`: the
        server releases it when that session ends, so a holder that dies frees it."""
        key = int.from_bytes(hashlib.blake2b(f"cairn lock {name}".encode(), digest_size=8).digest(), "big",
                             signed=True)
        try:
            with self._pool.connection() as conn:
                got = conn.execute("SELECT pg_try_advisory_lock(%s)", [key]).fetchone()[0]
                try:
                    yield got
                finally:
                    if got and not conn.broken:
                        conn.execute("SELECT pg_advisory_unlock(%s)", [key])
        except PoolTimeout:
            raise BackendError(f"PostgreSQL at {self._where}: no connection within {self._timeout:g} s") from None
        except psycopg.Error as e:
            raise self._backend_error(e) from None

    def size_bytes(self) -> int:
        return self._run(lambda conn: conn.execute(
            "SELECT coalesce(sum(pg_total_relation_size(c.oid)), 0)::bigint FROM pg_class c"
            " JOIN pg_namespace n ON n.oid = c.relnamespace"
            " WHERE n.nspname = 'records' AND c.relkind = 'r'").fetchone()[0])

    def close(self) -> None:
        if _shared.release(self._key):
            self._pool.close()

    def _run(self, work: Callable[[psycopg.Connection], T], retry: Callable[[], bool] = lambda: True) -> T:
        """`work` on a pooled connection, its failures as BackendError.

        When the server restarted, the pool's idle connections are dead though the server is
        up: a broken connection makes the pool check (and replace) all of them, and `work` is
        tried once more on a fresh one if `retry()` says that is safe (a read always is; a
        commit until its COMMIT is sent)."""
        for attempt in range(2):
            conn = None
            try:
                with self._pool.connection() as conn:
                    return work(conn)
            except (errors.UndefinedTable, errors.DeadlockDetected):
                raise
            except errors.ProgramLimitExceeded as e:
                raise ValueError(f"a metadata record PostgreSQL cannot store: {_first_line(e)}") from None
            except PoolTimeout:
                raise BackendError(f"PostgreSQL at {self._where}: no connection within {self._timeout:g} s "
                                   f"(server down, or every connection busy)") from None
            except psycopg.Error as e:
                if conn is None or not conn.broken:
                    raise self._backend_error(e) from None
                self._pool.check()
                if attempt or not retry():
                    raise self._backend_error(e) from None
        raise AssertionError("unreachable")

    def _backend_error(self, e: psycopg.Error) -> BackendError:
        return BackendError(f"PostgreSQL at {self._where}: {_first_line(e)}")


def _name(name: str) -> str:
    """A table or counter name as a PostgreSQL identifier (at most 63 bytes, no NUL)."""
    if not name or len(name.encode()) > 63 or "\0" in name:
        raise ValueError(f"a PostgreSQL table or counter name is 1 to 63 bytes without NUL: {name!r}")
    return name


def _relation(table: Table) -> sql.Identifier:
    return sql.Identifier("records", _name(table.name))


@contextmanager
def _snapshot(conn: psycopg.Connection, needed: bool) -> Iterator[None]:
    """One read-only REPEATABLE READ transaction when `needed` (several statements must see one state)."""
    if not needed:
        yield
        return
    with conn.transaction():
        conn.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
        yield


class _Write:
    """One commit's transaction: deletes first, then puts, each in (table name, key) order."""

    def __init__(self, puts: dict[Table, dict[bytes, bytes]], deletes: dict[Table, list[bytes]]) -> None:
        self.puts = sorted(puts.items(), key=lambda item: item[0].name)
        self.deletes = sorted(deletes.items(), key=lambda item: item[0].name)
        self.committing = False  # once COMMIT is sent, the outcome is unknown if the connection dies

    def __call__(self, conn: psycopg.Connection) -> None:
        staged = False
        with conn.transaction():
            for table, keys in self.deletes:
                conn.execute(sql.SQL("DELETE FROM {} WHERE key = ANY(%b)").format(_relation(table)), [keys])
            for table, items in self.puts:
                if len(items) >= COPY_FROM:
                    _copy_in(conn, table, items.items(), staged)  # sorted by the server
                    staged = True
                else:
                    with conn.cursor() as cur:
                        cur.executemany(_insert(table, sql.SQL("VALUES (%b, %b)")), sorted(items.items()))
            self.committing = True


def _copy_in(conn: psycopg.Connection, table: Table, rows: Iterable[tuple[bytes, bytes]], staged: bool) -> None:
    """Stream rows with COPY into a temporary table (one per connection, emptied at commit),
    then merge them in one statement."""
    if staged:
        conn.execute("TRUNCATE pg_temp.staging")
    else:
        conn.execute("CREATE TEMPORARY TABLE IF NOT EXISTS staging (key bytea, value bytea) ON COMMIT DELETE ROWS")
    with conn.cursor() as cur:
        with cur.copy("COPY pg_temp.staging (key, value) FROM STDIN (FORMAT BINARY)") as copy:
            copy.set_types(["bytea", "bytea"])
            for row in rows:
                copy.write_row(row)
        cur.execute(_insert(table, sql.SQL("SELECT key, value FROM pg_temp.staging ORDER BY key")))


def _insert(table: Table, source: sql.Composable) -> sql.Composed:
    action = "DO NOTHING" if table.insert_only else "DO UPDATE SET value = EXCLUDED.value"
    return sql.SQL("INSERT INTO {} (key, value) {} ON CONFLICT (key) {}").format(
        _relation(table), source, sql.SQL(action))


def _describe(info: str) -> str:
    """Where the store is, for error messages: host or socket directory, port, database."""
    params = psycopg.conninfo.conninfo_to_dict(info)
    host = params.get("host") or "the default socket"
    port = f":{params['port']}" if params.get("port") else ""
    return f"{host}{port}/{params.get('dbname')}"


def _seconds(timeout: float) -> int:
    """libpq's connect_timeout: whole seconds, at least 2 (libpq treats 1 as 2)."""
    return max(2, round(timeout))


def _first_line(e: BaseException) -> str:
    text = str(e).strip()
    return text.splitlines()[0] if text else type(e).__name__
