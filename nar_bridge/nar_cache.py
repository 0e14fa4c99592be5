"""Hot rendered NARs on disk, so a NAR asked for again is sent with sendfile, as nginx sends a file.

Rendering a NAR from castore (layout, chunk lookups, decompression, BLAKE3 of every chunk) costs
several times what sending a file costs; a binary cache serves the same few NARs over and over.
A NAR is rendered into a temporary file, checked against its NarHash and size, and only then
renamed to its name (its NarHash in hex): a name in the directory is always a whole, checked
NAR, and a corrupt store gives a clean error before any header. Concurrent requests for one NAR
wait for one render (see `serve`). The cache keeps at most `max_bytes`, dropping the least
recently used NARs; a file left by an earlier process is checked against its name again before
it is first served. One process per directory.
"""

from __future__ import annotations

import collections
import hashlib
import os
import re
import tempfile
import threading
from pathlib import Path
from typing import BinaryIO, Callable, Iterable

from castore.errors import CorruptionError
from castore.singleflight import SingleFlight
from castore.tally import Tally

NAR_CACHE_BYTES = 4 << 30
LARGEST_SHARE = 4
"""A NAR larger than this share of the cache is streamed, not cached: it would push out many others,
and its client would wait for the whole render before the first byte."""
_TEMPORARY = ".partial-"
_NAME = re.compile(r"[0-9a-f]{64}")
_HASH_PIECE = 1 << 20


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
        self._renders: SingleFlight[str, None] = SingleFlight()
        self.lookups = Tally()
        """Whole NARs asked of serve(): "hit" (sent from the cache) or "miss" (rendered first), for metrics."""
        self._adopt()

    def fits(self, size: int) -> bool:
        return size <= self._max_bytes // LARGEST_SHARE

    def serve(self, nar_sha256: bytes, size: int, render: Callable[[], Iterable[bytes]]) -> BinaryIO | None:
        """Blocking: the NAR opened for reading from the cache, rendered into it first if it is not
        there (callers asking for one NAR at once share one render, and its errors); None when it
        keeps being evicted before it can be opened, or renders under way leave no room for it (a
        cache too small for what is being served: the caller streams it instead)."""
        name = nar_sha256.hex()
        for rendered in (False, True):
            found = self.open(nar_sha256, size)
            if found is not None:
                self.lookups.add("miss" if rendered else "hit")
                return found
            if not self._renders.run(name, lambda: self._fill(name, nar_sha256, size, render)):
                break
        self.lookups.add("miss")
        return None

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

    def _fill(self, name: str, nar_sha256: bytes, size: int, render: Callable[[], Iterable[bytes]]) -> bool:
        """Render into a temporary file, check it, rename it to `name`; CorruptionError (nothing
        kept) when the rendered bytes are not the NAR the NarHash names. True when the NAR is in the
        cache (also when a render that finished since the caller looked put it there), False when
        renders under way leave no room for it."""
        with self._lock:
            if name in self._files:
                return True
        if not self._reserve(name, size):
            return False
        temporary = None
        try:
            temporary = tempfile.NamedTemporaryFile(dir=self._directory, prefix=_TEMPORARY, delete=False)
            sha256 = hashlib.sha256()
            written = 0
            with temporary:
                for piece in render():
                    sha256.update(piece)
                    temporary.write(piece)
                    written += len(piece)
            if written != size or sha256.digest() != nar_sha256:
                raise CorruptionError(f"the NAR rendered for NarHash sha256:{name} has {written} bytes and "
                                      f"hash sha256:{sha256.hexdigest()}: the store does not hold that NAR intact")
            os.rename(temporary.name, self._directory / name)
        except BaseException:
            if temporary is not None:
                _unlink(Path(temporary.name))
            with self._lock:
                self._bytes -= self._rendering.pop(name)
            raise
        with self._lock:
            self._files[name] = self._rendering.pop(name)
            self._checked.add(name)
        return True

    def _reserve(self, name: str, size: int) -> bool:
        """Count `size` bytes for `name` (in `_rendering`), evicting the least recently used NARs
        to stay within the bound; False, counting nothing, when renders under way fill it."""
        evicted = []
        with self._lock:
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


def _has_hash(file: BinaryIO, nar_sha256: bytes) -> bool:
    sha256 = hashlib.sha256()
    while piece := file.read(_HASH_PIECE):
        sha256.update(piece)
    file.seek(0)
    return sha256.digest() == nar_sha256


def _unlink(path: Path) -> None:
    path.unlink(missing_ok=True)
