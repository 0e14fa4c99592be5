"""The bridge's own durable state: small named records (staged NAR uploads, build logs).

What the store's services cannot hold lives here: an uploaded NAR that has no
narinfo yet has no store path, so no PathInfo; a build log is not castore data.
Records are files written atomically (temp file, fsync, rename, fsync of the
directory), so an acknowledged upload survives a crash or restart of the bridge.
`memory://` stores get in-memory records: they forget everything on exit anyway.
"""

from __future__ import annotations

import os
import re
import tempfile
import threading
from abc import ABC, abstractmethod
from pathlib import Path
from urllib.parse import urlsplit

from castore.errors import ValidationError
from castore.url import default_store_url, local_path

_KEY = re.compile(r"[A-Za-z0-9+\-._?=]{1,255}")
STATE_DIRNAME = "nar-bridge"


class Records(ABC):
    """Bytes by key; keys are file-name safe (store path and NAR file names)."""

    @abstractmethod
    def get(self, key: str) -> bytes | None: ...

    @abstractmethod
    def put(self, key: str, value: bytes) -> None:
        """Durable on return; replaces an earlier value."""

    @staticmethod
    def check_key(key: str) -> str:
        if not _KEY.fullmatch(key) or key.startswith("."):
            raise ValidationError(f"invalid record name {key[:80]!r}")
        return key


class MemoryRecords(Records):
    def __init__(self) -> None:
        self._values: dict[str, bytes] = {}
        self._lock = threading.Lock()

    def get(self, key: str) -> bytes | None:
        return self._values.get(self.check_key(key))

    def put(self, key: str, value: bytes) -> None:
        with self._lock:
            self._values[self.check_key(key)] = value


class FileRecords(Records):
    def __init__(self, directory: Path) -> None:
        self._dir = directory
        directory.mkdir(parents=True, exist_ok=True)

    def get(self, key: str) -> bytes | None:
        try:
            return (self._dir / self.check_key(key)).read_bytes()
        except FileNotFoundError:
            return None

    def put(self, key: str, value: bytes) -> None:
        target = self._dir / self.check_key(key)
        fd, tmp = tempfile.mkstemp(dir=self._dir, prefix=".tmp-")
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(value)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, target)
        except BaseException:
            os.unlink(tmp)
            raise
        dir_fd = os.open(self._dir, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)


def state_dir_for(store_url: str | None) -> Path | None:
    """Where the bridge keeps its records by default: beside a local store, else in the user's
    state directory; None for memory:// (records in memory)."""
    url = store_url or default_store_url()
    scheme = urlsplit(url).scheme
    if scheme == "memory":
        return None
    if scheme == "local":
        return Path(local_path(url)) / STATE_DIRNAME
    state = os.environ.get("XDG_STATE_HOME") or os.path.join(Path.home(), ".local", "state")
    safe = re.sub(r"[^A-Za-z0-9.-]+", "_", url)
    return Path(state) / "cairn" / STATE_DIRNAME / safe


def open_records(state_dir: Path | None, name: str) -> Records:
    """The record set `name` (e.g. "staged", "log") in `state_dir`, or in memory."""
    return MemoryRecords() if state_dir is None else FileRecords(state_dir / name)
