"""Pack files: append-only files of compressed frames, shared by processes without coordination.

A process appends only to a pack it holds an exclusive flock on, so two writers never
interleave. Bytes after the last referenced frame (a crash mid-append) are unreferenced
and harmless; later appends simply go after them. Readers need no lock: every frame
they are pointed at was written and synced before the metadata naming it.
"""

from __future__ import annotations

import errno
import fcntl
import os
import threading

from castore.errors import CorruptionError

PACK_LIMIT = 1 << 30
"""A writer moves to another pack once its pack would grow past this."""
SUFFIX = ".pack"


def _pack_name(pack_id: int) -> str:
    return f"{pack_id:08d}{SUFFIX}"


class PackFiles:
    """The packs/ directory of one store, as seen by one process."""

    def __init__(self, directory: str) -> None:
        self.directory = directory
        os.makedirs(directory, exist_ok=True)
        self._write_lock = threading.Lock()
        self._read_lock = threading.Lock()
        self._pack_id: int | None = None
        self._fd = -1
        self._end = 0
        self._unsynced: dict[int, int] = {}  # fd -> pack id, written since the last sync
        self._readers: dict[int, int] = {}  # pack id -> read-only fd

    def append(self, data: bytes) -> tuple[int, int]:
        """Write `data` at the end of this process's pack; returns (pack id, offset). Not yet synced."""
        with self._write_lock:
            if self._pack_id is None or (self._end and self._end + len(data) > PACK_LIMIT):
                self._acquire()
            assert self._pack_id is not None
            offset = self._end
            view = memoryview(data)
            while view:
                written = os.pwrite(self._fd, view, offset + len(data) - len(view))
                view = view[written:]
            self._end += len(data)
            self._unsynced[self._fd] = self._pack_id
            return self._pack_id, offset

    def sync(self) -> None:
        """Make every append so far durable; called before metadata points at it."""
        with self._write_lock:
            for fd in list(self._unsynced):
                os.fdatasync(fd)
                del self._unsynced[fd]
                if fd != self._fd:
                    os.close(fd)  # a pack we moved away from: its lock goes with it

    def read(self, pack_id: int, offset: int, length: int) -> bytes:
        fd = self._reader(pack_id)
        data = os.pread(fd, length, offset)
        if len(data) != length:
            raise CorruptionError(f"pack {_pack_name(pack_id)} is truncated: wanted {length} bytes "
                                  f"at {offset}, got {len(data)}")
        return data

    def total_bytes(self) -> int:
        with os.scandir(self.directory) as entries:
            return sum(e.stat().st_size for e in entries if e.name.endswith(SUFFIX))

    def close(self) -> None:
        """Close files (and so release the pack lock); unsynced appends are unreferenced."""
        with self._write_lock:
            for fd in set(self._unsynced) | ({self._fd} if self._fd >= 0 else set()):
                os.close(fd)
            self._unsynced.clear()
            self._fd, self._pack_id = -1, None
        with self._read_lock:
            for fd in self._readers.values():
                os.close(fd)
            self._readers.clear()

    def _reader(self, pack_id: int) -> int:
        with self._read_lock:
            fd = self._readers.get(pack_id)
            if fd is None:
                try:
                    fd = os.open(os.path.join(self.directory, _pack_name(pack_id)), os.O_RDONLY | os.O_CLOEXEC)
                except FileNotFoundError:
                    raise CorruptionError(f"pack {_pack_name(pack_id)} is referenced but missing") from None
                self._readers[pack_id] = fd
            return fd

    def _acquire(self) -> None:
        """Switch to an unlocked pack with room, or a new one. Caller holds the write lock."""
        if self._fd >= 0 and self._fd not in self._unsynced:
            os.close(self._fd)
        self._pack_id, self._fd, self._end = None, -1, 0
        ids = sorted(int(n[:-len(SUFFIX)]) for n in os.listdir(self.directory)
                     if n.endswith(SUFFIX) and n[:-len(SUFFIX)].isdigit())
        for pack_id in ids:
            if self._try_lock(pack_id, create=False):
                return
        pack_id = (ids[-1] + 1) if ids else 0
        while not self._try_lock(pack_id, create=True):
            pack_id += 1

    def _try_lock(self, pack_id: int, *, create: bool) -> bool:
        path = os.path.join(self.directory, _pack_name(pack_id))
        flags = os.O_WRONLY | os.O_CLOEXEC | (os.O_CREAT | os.O_EXCL if create else 0)
        try:
            fd = os.open(path, flags, 0o644)
        except (FileExistsError, FileNotFoundError):
            return False
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as e:
            os.close(fd)
            if e.errno in (errno.EWOULDBLOCK, errno.EAGAIN):
                return False
            raise
        end = os.fstat(fd).st_size
        if not create and end >= PACK_LIMIT:
            os.close(fd)
            return False
        if create:
            _fsync_dir(self.directory)  # the new name survives a crash along with its data
        self._pack_id, self._fd, self._end = pack_id, fd, end
        return True


def _fsync_dir(path: str) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
