"""Metadata on PostgreSQL vs LMDB: one commit of 100,000 chunk-location-sized records (36-byte
key -> 24-byte value) into an insert-only table, then get_many of 10,000 random keys of them.

PostgreSQL here is a private server on a unix socket of this machine, with its default
durability (fsync on, as LMDB syncs each commit); over a network each call adds a round trip.
No target: the figures say what a cluster pays for records, next to the data they name
(100,000 chunk locations name about 6 GiB of chunks at the 64 KiB average chunk).
"""

from __future__ import annotations

import os
import random
import sys
import tempfile
import time

from common import ROOT

sys.path.insert(0, str(ROOT))

from castore.storage.metadata import MetadataStore, Table  # noqa: E402
from castore.storage.metadata_lmdb import LmdbMetadataStore  # noqa: E402
from castore.storage.metadata_postgres import PostgresMetadataStore  # noqa: E402
from tests.services.postgres import running_postgres  # noqa: E402

RECORDS = 100_000
LOOKUPS = 10_000
ROUNDS = 3


def measure(open_store) -> tuple[float, float]:
    """Best of ROUNDS: seconds for the commit (a fresh table each round) and for get_many."""
    commits, lookups = [], []
    store: MetadataStore = open_store()
    for round_ in range(ROUNDS):
        table = Table(f"chunks{round_}", insert_only=True)
        records = {os.urandom(36): os.urandom(24) for _ in range(RECORDS)}
        keys = random.sample(list(records), LOOKUPS)
        store.commit({table: {b"seed": b""}})  # the table exists: time the records alone
        start = time.perf_counter()
        store.commit({table: records})
        commits.append(time.perf_counter() - start)
        start = time.perf_counter()
        found = store.get_many(table, keys)
        lookups.append(time.perf_counter() - start)
        assert found == [records[k] for k in keys]
    store.close()
    return min(commits), min(lookups)


def main() -> None:
    with tempfile.TemporaryDirectory(prefix="cairn-bench-lmdb-") as lmdb_dir:
        lmdb_commit, lmdb_get = measure(lambda: LmdbMetadataStore.open(lmdb_dir))
    with running_postgres(durable=True) as server:
        url = server.create_database()
        pg_commit, pg_get = measure(lambda: PostgresMetadataStore.open(url))
    for what, pg, lmdb in ((f"commit of {RECORDS:,} records", pg_commit, lmdb_commit),
                           (f"get_many of {LOOKUPS:,} random keys", pg_get, lmdb_get)):
        print(f"{what}: postgresql {pg:.3f} s vs LMDB {lmdb:.3f} s -> ratio {pg / lmdb:.2f}x")


if __name__ == "__main__":
    main()
