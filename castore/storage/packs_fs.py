"""Packs as files: `<dir>/<first 2 hex digits>/<name>.pack`.

A put writes a temporary file, syncs it, renames it into place and syncs the directory, so
a pack is whole under its name or absent, whatever the moment of a crash (a crash leaves at
most a temporary file, which list() ignores). Reads go through read-only descriptors kept
open for the packs read last (pread: no seek position shared between threads).
"""

from __future__ import annotations

import contextlib
import os
import threading
from collections import OrderedDict
from typing import Iterator, Sequence

from castore.errors import CorruptionError
from castore.storage.packs import PackStore, check_name

SUFFIX = ".pack"
OPEN_FILES = 256
"""Descriptors kept open for reading; the least recently read beyond this are closed."""


class FsPackStore(PackStore):
    def __init__(self, directory: str) -> None:
        self.directory = directory
        os.makedirs(directory, exist_ok=True)
        self._lock = threading.Lock()
        self._open: OrderedDict[str, _Reader] = OrderedDict()

    def path(self, name: str) -> str:
        return os.path.join(self.directory, name[:2], name + SUFFIX)

    def put(self, name: str, data: bytes | memoryview) -> None:
        final = self.path(check_name(name))
        folder = os.path.dirname(final)
        if os.path.exists(final):
            _fsync_dir(folder)  # its writer may not have synced the rename yet
            return
        if not os.path.isdir(folder):
            os.makedirs(folder, exist_ok=True)
            _fsync_dir(self.directory)  # the new folder survives a crash along with the pack in it
        temp = os.path.join(folder, f".{name}.{os.getpid()}-{threading.get_ident()}.tmp")
        fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o644)
        try:
            _write_all(fd, data)
            os.fdatasync(fd)
        except BaseException:
            os.close(fd)
            with contextlib.suppress(OSError):  # the write's failure is the one to report
                os.unlink(temp)
            raise
        os.close(fd)
        os.replace(temp, final)
        _fsync_dir(folder)

    def read(self, name: str, ranges: Sequence[tuple[int, int]]) -> list[bytes]:
        reader = self._reader(check_name(name))
        try:
            out = []
            for offset, length in ranges:
                data = os.pread(reader.fd, length, offset)
                if len(data) != length:
                    raise CorruptionError(f"pack {name} is truncated: wanted {length} bytes at {offset}, "
                                          f"got {len(data)}")
                out.append(data)
            return out
        finally:
            self._done(reader)

    def list(self) -> Iterator[tuple[str, int]]:
        with os.scandir(self.directory) as folders:
            for folder in folders:
                if len(folder.name) != 2 or not folder.is_dir():
                    continue
                with os.scandir(folder.path) as entries:
                    for entry in entries:
                        if entry.name.endswith(SUFFIX) and not entry.name.startswith("."):
                            yield entry.name[:-len(SUFFIX)], entry.stat().st_size

    def delete(self, name: str) -> None:
        path = self.path(check_name(name))
        with self._lock:
            reader = self._open.pop(name, None)
            if reader is not None:
                reader.retire()
        try:
            os.unlink(path)
        except FileNotFoundError:
            return
        _fsync_dir(os.path.dirname(path))

    def close(self) -> None:
        with self._lock:
            for reader in self._open.values():
                reader.retire()
            self._open.clear()

    def _reader(self, name: str) -> _Reader:
        """An open descriptor of the pack, held until _done (so closing it waits for its readers)."""
        with self._lock:
            reader = self._open.get(name)
            if reader is not None:
                self._open.move_to_end(name)
                reader.users += 1
                return reader
        try:
            fd = os.open(self.path(name), os.O_RDONLY | os.O_CLOEXEC)
        except FileNotFoundError:
            raise CorruptionError(f"pack {name} is referenced but missing") from None
        with self._lock:
            reader = self._open.get(name)
            if reader is None:
                reader = self._open[name] = _Reader(fd)
                while len(self._open) > OPEN_FILES:
                    self._open.popitem(last=False)[1].retire()
            else:
                os.close(fd)  # another thread opened it meanwhile
            reader.users += 1
            return reader

    def _done(self, reader: _Reader) -> None:
        with self._lock:
            reader.users -= 1
            if reader.retired and reader.users == 0:
                os.close(reader.fd)


class _Reader:
    """A descriptor and the reads under way on it; retired ones close when their last read ends.
    (Attributes change under FsPackStore._lock.)"""

    def __init__(self, fd: int) -> None:
        self.fd = fd
        self.users = 0
        self.retired = False

    def retire(self) -> None:
        self.retired = True
        if self.users == 0:
            os.close(self.fd)


def _write_all(fd: int, data: bytes | memoryview) -> None:
    """Write every byte. Each view is released before a failure leaves, so the caller's buffer (a
    pack's mapping) can be closed while the failure, and its traceback, are still kept."""
    with memoryview(data) as view, view.cast("B") as flat:
        done = 0
        while done < len(flat):
            with flat[done:] as left:
                done += os.write(fd, left)


def _fsync_dir(path: str) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
