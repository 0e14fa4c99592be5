"""The cluster the issue-12 figures run against: a private PostgreSQL (durable, as LMDB syncs
each commit) and a private SeaweedFS with its S3 gateway, both on this machine, started with the
test suite's own helpers. Every store URL it hands out is a fresh database and a fresh bucket
prefix, so runs never see each other's data."""

from __future__ import annotations

import contextlib
import itertools
import os
import sys
from dataclasses import dataclass, field
from typing import Iterator

from common import ROOT

sys.path.insert(0, str(ROOT))

from store.url import Store  # noqa: E402
from castore.storage.packs_cache import CachedPackStore  # noqa: E402
from castore.storage.packs_s3 import S3PackStore  # noqa: E402
from tests.services.postgres import PostgresServer, running_postgres  # noqa: E402
from tests.services.seaweed import BUCKET, SeaweedFS, running_seaweedfs  # noqa: E402


@dataclass
class Cluster:
    postgres: PostgresServer
    weed: SeaweedFS
    _numbers: Iterator[int] = field(default_factory=itertools.count)

    def store_url(self) -> str:
        """`postgresql://...&packs=s3://...` of an empty store: a new database, a new prefix."""
        database = self.postgres.create_database()
        return f"{database}&packs=s3://{BUCKET}/bench-{next(self._numbers)}"

    def packs(self, store_url: str) -> S3PackStore:
        """A client of the store's packs, to list them (its own request counter)."""
        return S3PackStore(store_url.split("packs=", 1)[1])


@contextlib.contextmanager
def cluster() -> Iterator[Cluster]:
    """PostgreSQL and SeaweedFS, running; the AWS_* environment that obstore reads is set in this
    process (so every `cairn` it starts inherits it) for as long as they run."""
    with running_postgres(durable=True) as postgres, running_seaweedfs() as weed:
        saved = {name: os.environ.get(name) for name in weed.env}
        os.environ.update(weed.env)
        try:
            yield Cluster(postgres, weed)
        finally:
            for name, value in saved.items():
                if value is None:
                    os.environ.pop(name, None)
                else:
                    os.environ[name] = value


def s3_packs(store: Store) -> S3PackStore:
    """The S3 pack store under an open cluster store's engine (behind its packs-cache, if any),
    whose `requests` counts what it sent."""
    packs = store.castore.blobs.engine.packs.store
    if isinstance(packs, CachedPackStore):
        packs = packs.inner
    if not isinstance(packs, S3PackStore):
        raise TypeError(f"not a store with packs on S3: {type(packs).__name__}")
    return packs


def pack_file_bytes(local_store: str) -> int:
    """Sum of the pack files' sizes of a `local://` store."""
    packs = os.path.join(local_store, "packs")
    return sum(os.path.getsize(os.path.join(d, f)) for d, _, files in os.walk(packs) for f in files)
