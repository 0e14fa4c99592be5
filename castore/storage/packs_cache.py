"""A bounded on-disk cache of the ranges read from another pack store (the `cache` combinator).

Packs never change under their name, so a cached range never goes stale: the only questions
are which ranges to keep (the least recently read go first once the files pass `max_bytes`)
and whether a file still holds what was written. Each range is one file,
`<dir>/<first 2 hex digits>/<name>.<offset>.<length>`, holding the BLAKE3 of its bytes and
the bytes: written to a temporary file and renamed into place, checked on every hit, so a
crash, a full disk or another process sharing the directory can cost a hit, never return
wrong bytes. Writes to the cache are not synced for the same reason.

Reads that miss go to the inner store in one call; puts, listings and deletes pass through.
The frames of a pack this process put are kept too (`keep`): a writer reads some back soon
(the bases of its deltas), and a server is often asked for what was just uploaded.
"""

from __future__ import annotations

import os
import re
import tempfile
import threading
from collections import OrderedDict
from typing import Iterator, Sequence

import blake3

from castore.storage.packs import PackStore, check_name

_DIGEST = 32
_ENTRY = re.compile(r"([0-9a-f]{64})\.(\d+)\.(\d+)")

Key = tuple[str, int, int]
"""(pack name, offset, length) of a cached range."""


class CachedPackStore(PackStore):
    def __init__(self, inner: PackStore, directory: str, max_bytes: int) -> None:
        self.inner = inner
        self.pack_bytes = inner.pack_bytes  # packs are made for the store behind the cache
        self.directory = directory
        self.max_bytes = max_bytes
        self._lock = threading.Lock()
        self._entries: OrderedDict[Key, int] = OrderedDict()
        """Every cached range this process knows, least recently read first, with its file size."""
        self._bytes = 0
        os.makedirs(directory, exist_ok=True)
        self._adopt_existing()

    def put(self, name: str, data: bytes | memoryview) -> None:
        self.inner.put(name, data)

    def keep(self, name: str, data: bytes | memoryview, ranges: Sequence[tuple[int, int]]) -> None:
        check_name(name)
        with memoryview(data) as view:
            for offset, length in ranges:
                if length:
                    self._fill((name, offset, length), view[offset:offset + length])

    def read(self, name: str, ranges: Sequence[tuple[int, int]]) -> list[bytes]:
        check_name(name)
        found: list[bytes | None] = [self._hit((name, offset, length)) if length else None
                                     for offset, length in ranges]
        missing = [i for i, data in enumerate(found) if data is None]
        if missing:
            fetched = self.inner.read(name, [ranges[i] for i in missing])
            for i, data in zip(missing, fetched):
                found[i] = data
                if data:
                    self._fill((name, *ranges[i]), data)
        return found  # type: ignore[return-value]  # every None was filled

    def list(self) -> Iterator[tuple[str, int]]:
        return self.inner.list()

    def delete(self, name: str) -> None:
        self.inner.delete(name)
        with self._lock:
            gone = [key for key in self._entries if key[0] == name]
        for key in gone:
            self._drop(key)

    def close(self) -> None:
        self.inner.close()

    def path(self, key: Key) -> str:
        name, offset, length = key
        return os.path.join(self.directory, name[:2], f"{name}.{offset}.{length}")

    def _hit(self, key: Key) -> bytes | None:
        """The cached bytes of a range, or None (not cached, evicted meanwhile, or damaged)."""
        with self._lock:
            if key not in self._entries:
                return None
            self._entries.move_to_end(key)
        try:
            with open(self.path(key), "rb") as file:
                stored = file.read()
        except FileNotFoundError:  # another process (or thread) evicted it
            self._drop(key)
            return None
        digest, data = stored[:_DIGEST], stored[_DIGEST:]
        if len(data) != key[2] or blake3.blake3(data).digest() != digest:
            self._drop(key)
            return None
        return data

    def _fill(self, key: Key, data: bytes | memoryview) -> None:
        size = _DIGEST + len(data)
        if size > self.max_bytes:
            return
        path = self.path(key)
        try:
            os.makedirs(os.path.dirname(path), exist_ok=True)
            fd, temp = tempfile.mkstemp(prefix=".", dir=os.path.dirname(path))
            with open(fd, "wb") as file:
                file.write(blake3.blake3(data).digest())
                file.write(data)
            os.replace(temp, path)
        except OSError:
            return  # a full or broken cache disk costs hits, never a read
        self._admit(key, size)

    def _admit(self, key: Key, size: int) -> None:
        """Count a range in, then evict the least recently read past max_bytes."""
        evicted = []
        with self._lock:
            if key not in self._entries:
                self._entries[key] = size
                self._bytes += size
            self._entries.move_to_end(key)
            while self._bytes > self.max_bytes:
                old, old_size = self._entries.popitem(last=False)
                self._bytes -= old_size
                evicted.append(old)
        for old in evicted:
            _unlink(self.path(old))

    def _drop(self, key: Key) -> None:
        with self._lock:
            size = self._entries.pop(key, None)
            if size is None:
                return
            self._bytes -= size
        _unlink(self.path(key))

    def _adopt_existing(self) -> None:
        """Count in the ranges a previous run left, oldest first, so the bound holds across runs;
        temporary files left by a crash go."""
        found = []
        with os.scandir(self.directory) as folders:
            for folder in folders:
                if not folder.is_dir() or len(folder.name) != 2:
                    continue
                with os.scandir(folder.path) as entries:
                    for entry in entries:
                        match = _ENTRY.fullmatch(entry.name)
                        if match:
                            stat = entry.stat()
                            found.append((stat.st_mtime, (match[1], int(match[2]), int(match[3])), stat.st_size))
                        elif entry.name.startswith("."):
                            _unlink(entry.path)
        for _, key, size in sorted(found):
            self._admit(key, size)


def _unlink(path: str) -> None:
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass
