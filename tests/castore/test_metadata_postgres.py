"""What the PostgreSQL metadata store adds to the conformance suite, against a real server:
many processes and writers at once, the COPY path, a server that stops and comes back."""

from __future__ import annotations

import subprocess
import sys
import threading
import time

import psycopg
import pytest

from castore.errors import BackendError, ValidationError
from castore.storage import metadata_postgres
from castore.storage.metadata import Table
from castore.storage.metadata_postgres import PostgresMetadataStore, conninfo
from castore.storage.migrations import postgres_migrations
from tests.services.postgres import PostgresServer, running_postgres

PLAIN = Table("plain")
FIXED = Table("fixed", insert_only=True)


@pytest.mark.parametrize("url, expected", [
    ("postgresql:///cairn", {"dbname": "cairn"}),
    ("postgresql://alice@db.example:6543/cairn", {"dbname": "cairn", "user": "alice", "host": "db.example",
                                                  "port": "6543"}),
    ("postgresql://postgres@/cairn?host=/run/postgresql", {"dbname": "cairn", "user": "postgres",
                                                           "host": "/run/postgresql"}),
    ("postgresql://db/cairn?sslmode=require", {"dbname": "cairn", "host": "db", "sslmode": "require"}),
])
def test_a_url_becomes_the_connection_parameters_it_names(url: str, expected: dict) -> None:
    assert psycopg.conninfo.conninfo_to_dict(conninfo(url)) == expected


@pytest.mark.parametrize("url, says", [
    ("postgres:///cairn", "not a postgresql:// URL"),
    ("postgresql://alice:secret@db/cairn", "PGPASSWORD"),
    ("postgresql://db/", "names one database"),
    ("postgresql://db/a/b", "names one database"),
    ("postgresql://db:port/cairn", "bad port"),
    ("postgresql://db/cairn?packs=s3://bucket/prefix", "unknown parameter 'packs'"),
    ("postgresql://db/cairn?host=/run/postgresql", "names a host twice"),
    ("postgresql:///cairn?host=/a&host=/b", "given twice"),
    ("postgresql:///cairn?host", "bad query"),
])
def test_a_bad_url_is_refused_with_what_is_wrong(url: str, says: str) -> None:
    with pytest.raises(ValidationError, match=says):
        PostgresMetadataStore.open(url)


def test_an_unreachable_server_is_a_backend_error_at_open(tmp_path) -> None:
    started = time.monotonic()
    with pytest.raises(BackendError, match=f"PostgreSQL at {tmp_path}/cairn: .*No such file") as raised:
        PostgresMetadataStore.open(f"postgresql:///cairn?host={tmp_path}")
    assert "\n" not in str(raised.value)
    assert time.monotonic() - started < 5


def test_a_database_at_a_newer_schema_is_refused(postgres_url: str) -> None:
    PostgresMetadataStore.open(postgres_url).close()
    with psycopg.connect(conninfo(postgres_url), autocommit=True) as conn:
        conn.execute("INSERT INTO schema_version (version, name) VALUES (9999, '9999_future.sql')")
    with pytest.raises(BackendError, match="version 9999, newer than this Cairn knows"):
        PostgresMetadataStore.open(postgres_url)


def _processes(script: str, *args: str, count: int = 2) -> list[str]:
    """Run `script` in `count` processes that start its work at the same moment; their outputs."""
    procs = [subprocess.Popen([sys.executable, "-c", script, *args], stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, text=True) for _ in range(count)]
    for proc in procs:
        assert proc.stdout.readline() == "ready\n"
    for proc in procs:
        proc.stdin.write("go\n")
        proc.stdin.flush()
    outputs = []
    for proc in procs:
        out, _ = proc.communicate(timeout=60)
        assert proc.returncode == 0
        outputs.append(out)
    return outputs


OPEN = """
import sys
from castore.storage.metadata_postgres import PostgresMetadataStore
print("ready", flush=True)
sys.stdin.readline()
PostgresMetadataStore.open(sys.argv[1]).close()
"""


def test_migrations_apply_once_when_processes_open_a_new_database_at_once(postgres_url: str) -> None:
    _processes(OPEN, postgres_url, count=4)
    with psycopg.connect(conninfo(postgres_url)) as conn:
        applied = conn.execute("SELECT version, name FROM schema_version ORDER BY version").fetchall()
    assert applied == [(version, name) for version, name, _ in postgres_migrations()]
    assert applied[0] == (1, "0001_init.sql")


IDS = """
import sys
from castore.storage.metadata_postgres import PostgresMetadataStore
store = PostgresMetadataStore.open(sys.argv[1])
print("ready", flush=True)
sys.stdin.readline()
print(" ".join(str(store.next_id("packs")) for _ in range(500)))
store.close()
"""


def test_next_id_is_unique_across_two_processes_at_once(postgres_url: str) -> None:
    ids = [int(i) for out in _processes(IDS, postgres_url) for i in out.split()]
    assert len(ids) == len(set(ids)) == 1000


def test_an_insert_only_key_keeps_the_value_of_the_first_transaction_to_commit(postgres_url: str) -> None:
    """The second writer waits for the first one's uncommitted row, then leaves it as it is."""
    store = PostgresMetadataStore.open(postgres_url)
    store.commit({FIXED: {b"other": b""}})  # the relation exists
    with psycopg.connect(conninfo(postgres_url)) as first:
        first.execute("INSERT INTO records.fixed (key, value) VALUES ('\\x6b', 'first')")  # b"k", not committed
        second = threading.Thread(target=store.commit, args=({FIXED: {b"k": b"second", b"k2": b"second"}},))
        second.start()
        time.sleep(0.3)
        assert second.is_alive()  # waiting on the first transaction's row
        first.commit()
    second.join(timeout=10)
    assert store.get(FIXED, b"k") == b"first"
    assert store.get(FIXED, b"k2") == b"second"
    store.close()


def test_concurrent_writers_of_the_same_keys_neither_fail_nor_overwrite(postgres_url: str) -> None:
    """Two stores (two pools) write 3,000 shared keys in opposite batch orders: no deadlock reaches
    them, each insert-only key holds one writer's value throughout, a plain key the last one's."""
    stores = [PostgresMetadataStore.open(postgres_url, pool_size=size) for size in (2, 3)]
    keys = [b"%05d" % i for i in range(3000)]
    batches = [keys[i:i + 500] for i in range(0, len(keys), 500)]
    failures: list[BaseException] = []

    def write(store: PostgresMetadataStore, value: bytes, order: list[list[bytes]]) -> None:
        try:
            for batch in order:
                store.commit({FIXED: dict.fromkeys(batch, value), PLAIN: dict.fromkeys(batch, value)})
        except BaseException as e:
            failures.append(e)

    writers = [threading.Thread(target=write, args=(stores[0], b"A", batches)),
               threading.Thread(target=write, args=(stores[1], b"B", batches[::-1]))]
    for writer in writers:
        writer.start()
    for writer in writers:
        writer.join(timeout=60)
    assert not failures
    fixed = dict(stores[0].items(FIXED))
    assert sorted(fixed) == keys and set(fixed.values()) <= {b"A", b"B"}
    stores[0].commit({FIXED: dict.fromkeys(keys, b"C")})
    assert dict(stores[1].items(FIXED)) == fixed
    assert {v for _, v in stores[1].items(PLAIN)} <= {b"A", b"B"}
    for store in stores:
        store.close()


@pytest.mark.parametrize("copy_from", [10 ** 9, 1], ids=["executemany", "copy"])
def test_both_write_paths_keep_the_insert_only_and_overwrite_rules(postgres_url: str, monkeypatch,
                                                                   copy_from: int) -> None:
    monkeypatch.setattr(metadata_postgres, "COPY_FROM", copy_from)
    store = PostgresMetadataStore.open(postgres_url)
    store.commit({PLAIN: {b"a": b"1", b"b": b"1"}, FIXED: {b"a": b"1", b"b": b"1"}})
    store.commit({PLAIN: {b"b": b"2", b"c": b"2"}, FIXED: {b"b": b"2", b"c": b"2"}}, {FIXED: [b"a"]})
    assert list(store.items(PLAIN)) == [(b"a", b"1"), (b"b", b"2"), (b"c", b"2")]
    assert list(store.items(FIXED)) == [(b"b", b"1"), (b"c", b"2")]
    store.close()


def test_a_large_commit_goes_through_copy_in_one_transaction(postgres_url: str) -> None:
    assert metadata_postgres.COPY_FROM <= 100_000
    store = PostgresMetadataStore.open(postgres_url)
    records = {b"%036d" % i: b"%024d" % i for i in range(100_000)}
    store.commit({FIXED: {b"%036d" % 5: b"kept"}})
    with pytest.raises(ValueError):  # one bad key: none of the 100,000 lands
        store.commit({FIXED: records, PLAIN: {b"": b""}})
    assert store.get(FIXED, b"%036d" % 6) is None
    store.commit({FIXED: records, PLAIN: records})
    keys = list(records)[::97]
    assert store.get_many(FIXED, keys) == [b"kept" if k == b"%036d" % 5 else records[k] for k in keys]
    assert sum(1 for _ in store.items(PLAIN)) == 100_000
    store.close()


def test_get_many_of_more_keys_than_one_statement_reads_them_all(postgres_url: str, monkeypatch) -> None:
    monkeypatch.setattr(metadata_postgres, "READ_BATCH", 7)
    store = PostgresMetadataStore.open(postgres_url)
    store.commit({PLAIN: {b"%02d" % i: b"%d" % i for i in range(0, 40, 2)}})
    keys = [b"%02d" % i for i in range(40)]
    assert store.get_many(PLAIN, keys) == [b"%d" % i if i % 2 == 0 else None for i in range(40)]
    store.close()


@pytest.fixture
def own_server():
    """A cluster of this test's own: it is stopped and started under the store."""
    with running_postgres() as server:
        yield server


def test_a_stopped_server_is_a_clear_backend_error_and_the_store_recovers_when_it_returns(
        own_server: PostgresServer) -> None:
    store = PostgresMetadataStore.open(own_server.create_database(), pool_size=3, timeout=1)
    store.commit({PLAIN: {b"k": b"v"}})
    own_server.stop()
    for call in (lambda: store.get(PLAIN, b"k"), lambda: store.commit({PLAIN: {b"k": b"w"}}),
                 lambda: store.next_id("packs"), lambda: store.get_many(PLAIN, [b"k"])):
        started = time.monotonic()
        with pytest.raises(BackendError, match=f"^PostgreSQL at {own_server.root}") as raised:
            call()
        assert "\n" not in str(raised.value)
        assert time.monotonic() - started < 5
    own_server.start()
    assert store.get(PLAIN, b"k") == b"v"  # the dead connections are replaced, not reported
    store.commit({PLAIN: {b"k": b"w"}})
    assert store.get_many(PLAIN, [b"k"]) == [b"w"]
    store.close()


def test_connections_dead_from_a_restart_are_replaced_without_an_error(own_server: PostgresServer) -> None:
    url = own_server.create_database()
    store = PostgresMetadataStore.open(url, pool_size=3, timeout=5)
    store.commit({FIXED: {b"k": b"before"}})
    with psycopg.connect(conninfo(url)) as blocker:  # three commits wait at once: three connections
        blocker.execute("INSERT INTO records.fixed (key, value) VALUES ('\\x6c', '')")
        writers = [threading.Thread(target=store.commit, args=({FIXED: {b"l": b"%d" % i}},)) for i in range(3)]
        for writer in writers:
            writer.start()
        time.sleep(0.3)
        blocker.commit()
    for writer in writers:
        writer.join(timeout=10)
    own_server.stop()
    own_server.start()
    store.commit({FIXED: {b"m": b"after"}})  # on a dead connection first: nothing was sent, so it is retried
    assert store.get_many(FIXED, [b"k", b"m"]) == [b"before", b"after"]
    store.close()
