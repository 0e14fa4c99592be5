"""Packs as the engine sees them: numbered, filled in memory, sealed into a PackStore.

Frames are appended to the open pack, held in memory up to the pack store's pack_bytes; then, or at a
commit that must make its data durable, it is sealed: named by its BLAKE3, put into the pack
store (durable on return), and its row (number -> name, size) made ready for the next commit,
with the records held until then because they name its frames (see records.py). An early
commit of a batch leaves the open pack open: on object storage each put is a billed request,
so packs are put full. Chunk records keep the pack's number, a u32 from the metadata store's
"packs" counter (unique across processes, so writers never share a pack); readers resolve
numbers through PACKS and cache the names, which never change.

A frame of a pack not yet put is read from memory, and so is one of the packs put last, as long
as their memory is not needed for the next: a delta's base is mostly a chunk written shortly
before, and reading it back from object storage would cost a GET.

A pack that cannot be put (a full disk) fails every append and seal until the commit that
finds the failure discards what was staged and held and calls `reset`: nothing committed names
it, and the open pack, which holds only frames of writes under way, is dropped with them, so
no bytes of failed writes reach a pack.
"""

from __future__ import annotations

import contextlib
import mmap
import struct
import threading
import time
from collections import OrderedDict
from typing import Callable, NamedTuple

from castore.errors import BackendError, CorruptionError
from castore.local.records import Records
from castore.storage.metadata import Table
from castore.storage.packs import PackStore, pack_name

PACKS = Table("packs", insert_only=True)
"""Pack number (u32, big-endian) -> name (32 bytes), size (u64) and, since garbage collection,
when it was put (u64 seconds; older rows have none: see PackRow)."""
_NUMBER = struct.Struct(">I")
_ROW = struct.Struct("<32sQ")
_CREATED = struct.Struct("<Q")


class PackRow(NamedTuple):
    """A pack's row: its name (hex), size, and when it was put (0: before rows said)."""

    name: str
    size: int
    created: int

    def encode(self) -> bytes:
        return _ROW.pack(bytes.fromhex(self.name), self.size) + _CREATED.pack(self.created)

    @classmethod
    def decode(cls, raw: bytes) -> PackRow:
        name, size = _ROW.unpack_from(raw)
        created = _CREATED.unpack_from(raw, _ROW.size)[0] if len(raw) > _ROW.size else 0
        return cls(name.hex(), size, created)


def pack_number(number: int) -> bytes:
    """A pack number as PACKS keys it."""
    return _NUMBER.pack(number)


def number_of(key: bytes) -> int:
    return _NUMBER.unpack(key)[0]


class Packs:
    def __init__(self, store: PackStore, records: Records) -> None:
        self.store = store
        self._records = records
        self._cond = threading.Condition()
        self._open: _OpenPack | None = None
        self._sealing: dict[int, _OpenPack] = {}  # sealed packs being put
        self._recent: OrderedDict[int, _OpenPack] = OrderedDict()
        """Packs put, still readable from memory (at most pack_bytes of it), oldest first."""
        self._names: dict[int, str] = {}
        self._failure: BaseException | None = None

    def append(self, frame: bytes, placed: Callable[[int, int], None]) -> None:
        """Add a frame to the open pack. `placed(pack number, offset)` holds the records naming
        it until that pack is put (while the pack cannot be sealed). A frame that does not fit seals the open
        pack first; one pack is put at a time, so a writer faster than the pack store waits
        rather than holding more packs in memory."""
        full = None
        with self._cond:
            self._cond.wait_for(lambda: self._failure or not self._sealing or self._fits(frame))
            self._check()
            if not self._fits(frame) and self._open is not None:
                full = self._seal_open()
            if self._open is None:
                self._open = _OpenPack(self._records.metadata.next_id("packs"), *self._memory(len(frame)))
            placed(self._open.number, self._open.append(frame))
        if full is not None:
            self._put(full)

    def seal(self, final: bool) -> frozenset[int]:
        """For a commit, once every frame it names is appended: the numbers of the packs not put
        yet, which records naming those frames must wait for. With `final`, none: the open pack
        is sealed and put, and every pack sealed is put before this returns."""
        with self._cond:
            self._check()
            if not final:
                return frozenset(self._sealing) | ({self._open.number} if self._open is not None else frozenset())
            full = self._seal_open() if self._open is not None else None
        if full is not None:
            self._put(full)
        with self._cond:
            self._cond.wait_for(lambda: not self._sealing)
            self._check()
        return frozenset()

    def read(self, pack_id: int, offset: int, length: int) -> bytes:
        """The bytes of a frame, from memory while its pack is not put yet or was put last."""
        with self._cond:
            pending = self._open if self._open is not None and self._open.number == pack_id \
                else self._sealing.get(pack_id) or self._recent.get(pack_id)
            if pending is not None:
                return pending.read(offset, length)
        name = self._names.get(pack_id) or self.name(pack_id)
        return self.store.read(name, [(offset, length)])[0]

    def name(self, pack_id: int) -> str:
        """The name of a put pack (CorruptionError when no record names it)."""
        row = self._records.get(PACKS, _NUMBER.pack(pack_id))
        if row is None:
            raise CorruptionError(f"pack {pack_id} is named by a chunk but has no record")
        name = self._names[pack_id] = PackRow.decode(row).name
        return name

    def stored_bytes(self) -> int:
        """Bytes of the committed packs."""
        return sum(PackRow.decode(row).size for _, row in self._records.items(PACKS))

    def reset(self) -> None:
        """After a failed commit discarded its records: forget the failure and drop the open pack
        (every frame in it is named only by a discarded record). Waits for packs being put."""
        with self._cond:
            self._cond.wait_for(lambda: not self._sealing)
            self._failure = None
            if self._open is not None:
                with contextlib.suppress(BufferError):  # never put: not kept readable among the recent
                    self._open.memory.close()
                self._open = None

    def close(self) -> None:
        """Close the pack store; what the open pack holds is dropped (the caller commits first)."""
        for pack in (self._open, *self._recent.values()):
            if pack is not None:
                with contextlib.suppress(BufferError):  # a view still held (a failure's traceback) frees it later
                    pack.memory.close()
        self._open = None
        self._recent.clear()
        self.store.close()

    def _memory(self, frame_size: int) -> tuple[mmap.mmap, int]:
        """Memory for a new open pack, and how many bytes of it are in use already: that of the
        oldest pack put if the frame fits in a pack of the usual size and the packs put hold
        more than half of pack_bytes. Reusing it spares faulting in and zeroing fresh pages
        (30 ms of CPU per 32 MiB pack, 3% of a numpy import); below half, a fresh mapping keeps
        the small packs of short commits readable. A writer keeps pack_bytes of such memory,
        with what it held, until it closes."""
        if frame_size <= self.store.pack_bytes and self._recent_bytes() > self.store.pack_bytes // 2:
            _, oldest = self._recent.popitem(last=False)
            return oldest.memory, oldest.resident
        return mmap.mmap(-1, max(self.store.pack_bytes, frame_size)), 0

    def _recycle(self, pack: _OpenPack) -> None:
        """Keep a put pack readable in memory, the oldest going past pack_bytes (caller holds
        the lock)."""
        if len(pack.memory) != self.store.pack_bytes:
            pack.memory.close()
            return
        self._recent[pack.number] = pack
        while self._recent_bytes() > self.store.pack_bytes:
            self._recent.popitem(last=False)[1].memory.close()

    def _recent_bytes(self) -> int:
        return sum(pack.resident for pack in self._recent.values())

    def _fits(self, frame: bytes) -> bool:
        return self._open is None or self._open.fits(frame)

    def _seal_open(self) -> _OpenPack:
        """Take the open pack (caller holds the condition's lock)."""
        sealed, self._open = self._open, None
        self._sealing[sealed.number] = sealed
        return sealed

    def _put(self, pack: _OpenPack) -> None:
        try:
            with pack.contents() as data:
                name = pack_name(data)
                self.store.put(name, data)
                self.store.keep(name, data, pack.frames)
        except BaseException as e:
            with self._cond:
                self._failure = self._failure or e
                del self._sealing[pack.number]
                with contextlib.suppress(BufferError):  # a view still held (a failure's traceback) frees it later
                    pack.memory.close()
                self._cond.notify_all()
            self._check()
        row = PackRow(name, pack.size, int(time.time())).encode()
        with self._cond:  # released as it leaves _sealing, so a seal names it only before release
            self._records.release(pack.number, PACKS, [(pack_number(pack.number), row)])
            self._names[pack.number] = name
            del self._sealing[pack.number]
            self._recycle(pack)
            self._cond.notify_all()

    def _check(self) -> None:
        if self._failure is not None:
            raise BackendError(f"writing a pack failed: {describe(self._failure)}") from self._failure


def describe(failure: BaseException) -> str:
    """A failure in a few words: an OSError's reason and file, not its errno."""
    if isinstance(failure, OSError) and failure.strerror:
        return failure.strerror + (f": {failure.filename}" if failure.filename else "")
    return str(failure) or type(failure).__name__


class _OpenPack:
    """A pack being filled, in an anonymous mapping of fixed capacity: pages are taken as frames
    are written, and given back when it is closed (bytearrays grown frame by frame and freed
    fragment the allocator's heap: with them, the 300 MiB import peaked 50-70 MB higher)."""

    def __init__(self, number: int, memory: mmap.mmap, used: int = 0) -> None:
        """`used`: bytes of `memory` a pack before this one wrote (its pages are in memory)."""
        self.number = number
        self.size = 0
        self.memory = memory
        self._used = used
        self.frames: list[tuple[int, int]] = []  # (offset, length) of each

    @property
    def resident(self) -> int:
        """Bytes of its memory that pages are taken for."""
        return max(self._used, self.size)

    def fits(self, frame: bytes) -> bool:
        return self.size + len(frame) <= len(self.memory)

    def append(self, frame: bytes) -> int:
        offset = self.size
        self.memory[offset:offset + len(frame)] = frame
        self.size += len(frame)
        self.frames.append((offset, len(frame)))
        return offset

    def read(self, offset: int, length: int) -> bytes:
        return self.memory[offset:min(offset + length, self.size)]

    def contents(self) -> memoryview:
        return memoryview(self.memory)[:self.size]
