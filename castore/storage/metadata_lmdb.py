"""The metadata store in LMDB: one environment per directory, a named database per table.

The only module (with lmdb_compaction, which it uses) that imports lmdb. LMDB allows one
Environment per file per process, so `LmdbMetadataStore.open` hands out a shared instance;
several processes use one index at once (LMDB serialises their write transactions). The
last process to close an index it wrote compacts it when most of it is free pages (see
lmdb_compaction.py).

An index this process may not write (a read-only file system or mount, or no permission) is
opened read-only, without LMDB's lock file: reading a store must not need a write. Every
LMDB failure (a full disk during a commit, most of all) leaves as a BackendError.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import re
import struct
import threading
from typing import Iterable, Iterator, Mapping, Sequence

import lmdb

from castore.errors import BackendError
from castore.storage import lmdb_compaction as compaction
from castore.storage.metadata import PAGE, MetadataStore, Table
from castore.storage.shared import Shared

MAP_SIZE = 1 << 40  # address space only: the file grows as needed
MAX_DBS = 32
COUNTERS = "~counters"
"""The database of next_id's counters (table names are words: none starts with ~)."""
ID_BLOCK = 64
"""Ids next_id reserves per write transaction: a process that makes many packs (a daemon
committing each write) pays one durable transaction per 64 of them, not one each. A process
leaves at most ID_BLOCK - 1 reserved ids unused."""
_ID = struct.Struct(">Q")

_shared: Shared[LmdbMetadataStore] = Shared()


class LmdbMetadataStore(MetadataStore):
    @classmethod
    def open(cls, path: str) -> LmdbMetadataStore:
        """The process's store for the LMDB directory `path` (created if need be); close() releases it."""
        path = os.path.realpath(path)
        return _shared.acquire(path, lambda: cls(path))

    def __init__(self, path: str) -> None:
        """Use `open`: LMDB forbids two environments of one file in a process."""
        self.path = path
        os.makedirs(path, exist_ok=True)
        self.read_only = not os.access(path, os.W_OK)
        # A read-only index has no claim: nothing this process does can conflict with a compaction.
        self._users = None if self.read_only else compaction.Users(path)
        try:
            with self._errors():
                self.env = lmdb.open(path, map_size=MAP_SIZE, max_dbs=MAX_DBS, readonly=self.read_only,
                                     lock=not self.read_only)
        except BaseException:
            if self._users is not None:
                self._users.release()
            raise
        self._dbs: dict[str, lmdb._Database | None] = {}
        self._dbs_lock = threading.Lock()
        self._ids: dict[str, range] = {}  # counter -> ids reserved and not yet handed out
        self._ids_lock = threading.Lock()
        self._wrote = False  # only a process that wrote compacts: a read never pays for a rewrite

    @contextlib.contextmanager
    def _errors(self) -> Iterator[None]:
        """LMDB's errors as BackendErrors naming the index (callers above know no lmdb)."""
        try:
            yield
        except lmdb.BadValsizeError as e:
            raise ValueError(f"metadata keys are non-empty bytes of at most 511: {e}") from None
        except lmdb.Error as e:
            raise BackendError(f"metadata index {self.path}: {e}{self._full()}") from None

    def _full(self) -> str:
        """Why a write failed, when LMDB says only EIO (its word for a short write on a full disk)."""
        with contextlib.suppress(OSError):
            if os.statvfs(self.path).f_bavail == 0:
                return " (the file system is full)"
        return ""

    def _writable(self) -> None:
        if self.read_only:
            raise BackendError(f"metadata index {self.path} is read-only (a read-only file system or "
                               "no permission to write): this store can only be read")

    def _db(self, name: str) -> lmdb._Database | None:
        """A table's database, created on first use (None: a read-only index never had the table)."""
        if name in self._dbs:
            return self._dbs[name]
        with self._dbs_lock:
            if name not in self._dbs:
                self._dbs[name] = self._open_db(name)
            return self._dbs[name]

    def _open_db(self, name: str) -> lmdb._Database | None:
        if self.read_only:
            try:  # in a transaction of open_db's own: a handle opened in a read one of ours dies with it
                return self.env.open_db(name.encode(), create=False)
            except lmdb.NotFoundError:
                return None
        # In a transaction begun here: open_db's own would wait for LMDB's write lock
        # holding the GIL, and a thread committing needs the GIL to let go of that lock.
        with self.env.begin(write=True) as txn:
            return self.env.open_db(name.encode(), txn=txn, create=True)

    def get(self, table: Table, key: bytes) -> bytes | None:
        return self.get_many(table, [key])[0]

    def get_many(self, table: Table, keys: Sequence[bytes]) -> list[bytes | None]:
        with self._errors():
            db = self._db(table.name)
            if db is None:
                return [None] * len(keys)
            with self.env.begin(db=db, buffers=False) as txn:
                return [txn.get(k) for k in keys]

    def scan(self, table: Table, after: bytes = b"", limit: int = PAGE) -> list[tuple[bytes, bytes]]:
        with self._errors():
            db = self._db(table.name)
            return [] if db is None else self._scan(db, after, limit)

    def _scan(self, db: lmdb._Database, after: bytes, limit: int) -> list[tuple[bytes, bytes]]:
        with self.env.begin(db=db, buffers=False) as txn:
            cursor = txn.cursor()
            found = cursor.set_range(after) if after else cursor.first()
            page = []
            while found and len(page) < limit:
                if cursor.key() != after:
                    page.append((cursor.key(), cursor.value()))
                found = cursor.next()
            return page

    def commit(self, puts: Mapping[Table, Mapping[bytes, bytes]],
               deletes: Mapping[Table, Iterable[bytes]] = {}) -> None:
        self._writable()
        self._wrote = True
        with self._errors():
            handles = {t.name: self._db(t.name) for t in (*puts, *deletes)}  # opening one needs its own write txn
            with self.env.begin(write=True) as txn:
                for table, keys in deletes.items():
                    for key in keys:
                        txn.delete(key, db=handles[table.name])
                for table, items in puts.items():
                    overwrite = not table.insert_only
                    for key, value in items.items():
                        txn.put(key, value, db=handles[table.name], overwrite=overwrite)

    def next_id(self, counter: str) -> int:
        with self._ids_lock:
            free = self._ids.get(counter)
            if not free:
                free = self._reserve(counter)
            self._ids[counter] = free[1:]
            return free[0]

    def _reserve(self, counter: str) -> range:
        self._writable()
        self._wrote = True
        with self._errors():
            db = self._db(COUNTERS)
            with self.env.begin(write=True, db=db) as txn:
                raw = txn.get(counter.encode())
                start = 0 if raw is None else _ID.unpack(raw)[0]
                txn.put(counter.encode(), _ID.pack(start + ID_BLOCK))
        return range(start, start + ID_BLOCK)

    @contextlib.contextmanager
    def try_lock(self, name: str) -> Iterator[bool]:
        """An flock on `lock-<name>` beside the environment: released by the kernel when its
        holder exits, however it exits."""
        if not re.fullmatch(r"[a-z0-9-]{1,64}", name):
            raise ValueError(f"lock names are short lowercase words: {name!r}")
        self._writable()  # what the lock guards writes
        fd = os.open(os.path.join(self.path, f"lock-{name}"), os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                yield False
                return
            yield True
        finally:
            os.close(fd)

    def size_bytes(self) -> int:
        return os.path.getsize(os.path.join(self.path, compaction.DATA))

    def close(self) -> None:
        """Release one reference; the last closes LMDB, compacting first if worthwhile (see
        lmdb_compaction.py). A failed compaction changes nothing."""
        if not _shared.release(self.path):
            return
        copy = None
        try:
            if self._wrote and self._users is not None and self._users.alone() \
                    and compaction.worthwhile(self.env):
                copy = compaction.compacted(self.env)
        except (OSError, lmdb.Error):
            copy = None
        finally:
            self.env.close()
        try:
            if copy is not None:
                compaction.install(copy, self.path)
        finally:
            if self._users is not None:
                self._users.release()
