"""Hot rendered NARs on disk, so a NAR asked for again is sent with sendfile, as nginx sends a file.

Rendering a NAR from castore (layout, chunk lookups, decompression, BLAKE3 of every chunk) costs
several times what sending a file costs; a binary cache serves the same few NARs over and over.
A NAR's first request streams its render to the client and tees the same bytes into a temporary
file (see Fill), which is renamed to the NAR's name (its NarHash in hex) only when the render
was whole and its sha256 is the NarHash: a name in the directory is always a whole, checked NAR.
One request fills a NAR at a time; others asking for it meanwhile stream their own render
uncached (waiting would make them wait for the whole render, which is what streaming avoids).
The cache keeps at most `max_bytes`, dropping the least recently used NARs; renders under way
count against it, and a NAR with no room is streamed, not cached. A file left by an earlier
process is checked against its name again before it is first served. One process per directory.
"""

from __future__ import annotations

import collections
import hashlib
import logging
import os
import queue
import re
import tempfile
import threading
from pathlib import Path
from typing import BinaryIO, Iterable, Iterator

from castore.errors import CorruptionError
from castore.tally import Tally

NAR_CACHE_BYTES = 4 << 30
LARGEST_SHARE = 4
"""A NAR larger than this share of the cache is streamed, not cached: it would push out many others."""
_TEMPORARY = ".partial-"
_NAME = re.compile(r"[0-9a-f]{64}")
_HASH_PIECE = 1 << 20
FILL_PIECES = 4
"""Pieces a Fill holds for its writer before the render waits for it."""

log = logging.getLogger(__name__)


class NarCache:
    """Rendered NARs by NarHash in `directory`, at most `max_bytes` of them; thread-safe."""

    def __init__(self, directory: Path, max_bytes: int = NAR_CACHE_BYTES) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        self._directory = directory
        self._max_bytes = max_bytes
        self._lock = threading.Lock()
        self._files: collections.OrderedDict[str, int] = collections.OrderedDict()
        """Name -> size of the NARs in the directory, least recently used first."""
        self._rendering: dict[str, int] = {}
        """Name -> size of the renders under way: counted, so they find the room they need."""
        self._bytes = 0
        self._checked: set[str] = set()
        """Files this process wrote or checked: they are served without hashing them again."""
        self.lookups = Tally()
        """Whole NARs asked of lookup(): "hit" (sent from the cache) or "miss" (rendered), for metrics."""
        self._adopt()

    def fits(self, size: int) -> bool:
        return size <= self._max_bytes // LARGEST_SHARE

    def lookup(self, nar_sha256: bytes, size: int) -> BinaryIO | Fill | None:
        """Blocking (may hash a file left by an earlier process): the NAR opened for reading when it
        is cached; else a Fill for the caller to tee its render into; None when another request is
        filling it already or renders under way leave no room (the caller streams its own render,
        uncached). Counted in `lookups`."""
        found = self.open(nar_sha256, size)
        self.lookups.add("miss" if found is None else "hit")
        return found if found is not None else self._begin(nar_sha256, size)

    def open(self, nar_sha256: bytes, size: int) -> BinaryIO | None:
        """Blocking: the cached NAR opened for reading, or None. The open file stays readable
        whatever is evicted meanwhile."""
        name = nar_sha256.hex()
        with self._lock:
            if name not in self._files:
                return None
            self._files.move_to_end(name)
            checked = name in self._checked
        try:
            file = open(self._directory / name, "rb")
        except FileNotFoundError:
            self._drop(name)
            return None
        if os.fstat(file.fileno()).st_size != size or not checked and not _has_hash(file, nar_sha256):
            file.close()
            self._drop(name)
            return None
        with self._lock:
            self._checked.add(name)
        return file

    def _begin(self, nar_sha256: bytes, size: int) -> Fill | None:
        """A Fill with `size` bytes reserved for it; None when the NAR is cached or being filled
        already, or there is no room."""
        name = nar_sha256.hex()
        if not self._reserve(name, size):
            return None
        try:
            temporary = tempfile.NamedTemporaryFile(dir=self._directory, prefix=_TEMPORARY, delete=False)
        except BaseException:
            self._release(name)
            raise
        return Fill(self, name, nar_sha256, size, temporary)

    def _adopt_fill(self, name: str, temporary: str) -> None:
        """A whole, checked render becomes the NAR named `name`."""
        os.rename(temporary, self._directory / name)
        with self._lock:
            self._files[name] = self._rendering.pop(name)
            self._checked.add(name)

    def _release(self, name: str) -> None:
        """A render that will not be kept gives back its reservation."""
        with self._lock:
            self._bytes -= self._rendering.pop(name)

    def _reserve(self, name: str, size: int) -> bool:
        """Count `size` bytes for `name` (in `_rendering`), evicting the least recently used NARs
        to stay within the bound; False, counting nothing, when renders under way fill it or `name`
        is cached or being filled already (checked under the same lock: one fill per NAR)."""
        evicted = []
        with self._lock:
            if name in self._files or name in self._rendering:
                return False
            while self._files and self._bytes + size > self._max_bytes:
                old, old_size = self._files.popitem(last=False)
                self._bytes -= old_size
                self._checked.discard(old)
                evicted.append(old)
            room = self._bytes + size <= self._max_bytes
            if room:
                self._bytes += size
                self._rendering[name] = size
        for old in evicted:
            _unlink(self._directory / old)
        return room

    def _drop(self, name: str) -> None:
        with self._lock:
            self._bytes -= self._files.pop(name, 0)
            self._checked.discard(name)
        _unlink(self._directory / name)

    def _adopt(self) -> None:
        """Take over the NARs an earlier process left (oldest first; checked when first served);
        remove its unfinished renders. Files not named like a NAR of the cache are left alone."""
        found = []
        for entry in os.scandir(self._directory):
            if entry.name.startswith(_TEMPORARY):
                _unlink(Path(entry.path))
            elif _NAME.fullmatch(entry.name) and entry.is_file():
                stat = entry.stat()
                found.append((stat.st_mtime, entry.name, stat.st_size))
        for _, name, size in sorted(found):
            if self.fits(size) and self._reserve(name, size):
                self._files[name] = self._rendering.pop(name)
            else:
                _unlink(self._directory / name)


class Fill:
    """One render of a NAR written into the cache as it streams to its client: it becomes the cached
    NAR (finish) only when it was whole and its sha256 is the NarHash; anything else is discarded.

    Hashing and writing run in a thread of their own, beside the render rather than after each
    piece of it (a first request costs the render, not the render plus the copy); a write that
    fails (a full disk) costs the cache its copy, never the client its stream."""

    def __init__(self, cache: NarCache, name: str, nar_sha256: bytes, size: int, file: BinaryIO) -> None:
        self._cache = cache
        self._name = name
        self._nar_sha256 = nar_sha256
        self._size = size
        self._file = file
        self._sha256 = hashlib.sha256()
        self._written = 0
        self._failure: OSError | None = None
        self._pieces: queue.Queue[bytes | None] = queue.Queue(FILL_PIECES)
        self._writer = threading.Thread(target=self._write_all, name="nar-cache-fill", daemon=True)
        self._writer.start()
        self._done = False

    def write(self, piece: bytes) -> None:
        self._pieces.put(piece)

    def _write_all(self) -> None:
        while (piece := self._pieces.get()) is not None:
            if self._failure is None:
                try:
                    self._sha256.update(piece)
                    self._file.write(piece)
                    self._written += len(piece)
                except OSError as e:
                    self._failure = e

    def _stop(self) -> None:
        """Wait for the writer to write what it was given, and close the file."""
        if self._writer.is_alive():
            self._pieces.put(None)
            self._writer.join()
        try:
            self._file.close()
        except OSError as e:
            self._failure = self._failure or e

    def finish(self) -> None:
        """Keep the render as the cached NAR, unless writing it failed (logged; nothing kept);
        CorruptionError (nothing kept) when the rendered bytes are not the NAR."""
        self._stop()
        if self._failure is not None:
            log.warning("could not write NAR sha256:%s into the cache: %s; not cached", self._name, self._failure)
            self.discard()
            return
        if self._written != self._size or self._sha256.digest() != self._nar_sha256:
            error = CorruptionError(f"the NAR rendered for NarHash sha256:{self._name} has {self._written} bytes "
                                    f"and hash sha256:{self._sha256.hexdigest()}: the store does not hold that "
                                    "NAR intact")
            log.error("%s; not cached", error)
            self.discard()
            raise error
        try:
            self._cache._adopt_fill(self._name, self._file.name)
        except OSError as e:
            log.warning("could not keep NAR sha256:%s in the cache: %s; not cached", self._name, e)
            self.discard()
            return
        self._done = True

    def discard(self) -> None:
        """Drop the render (a no-op once kept or dropped): its stream failed or was left unfinished."""
        if self._done:
            return
        self._done = True
        self._stop()
        _unlink(Path(self._file.name))
        self._cache._release(self._name)
        if self._written != self._size:
            log.info("render of NAR sha256:%s ended after %d of %d bytes; not cached",
                     self._name, self._written, self._size)


def teed(pieces: Iterable[bytes], fill: Fill) -> Iterator[bytes]:
    """`pieces`, each written into `fill` as it passes. The last is held back until the whole render
    checks out, so a render that is not the NAR ends its stream with an error one piece short, never
    as a whole body; a stream stopped early (an error, a client gone) leaves nothing in the cache."""
    try:
        held = None
        for piece in pieces:
            if held is not None:
                yield held
            fill.write(piece)
            held = piece
        fill.finish()
        if held is not None:
            yield held
    finally:
        fill.discard()


def _has_hash(file: BinaryIO, nar_sha256: bytes) -> bool:
    sha256 = hashlib.sha256()
    while piece := file.read(_HASH_PIECE):
        sha256.update(piece)
    file.seek(0)
    return sha256.digest() == nar_sha256


def _unlink(path: Path) -> None:
    path.unlink(missing_ok=True)
