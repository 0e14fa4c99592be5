"""Reading a Nix binary cache, from a directory (`file:///dir`) or over HTTP(S): its narinfos and NAR files.

Archive and the `nix+http(s)://` read-through both read caches this way. What a cache
sends is untrusted: a narinfo is read up to NARINFO_LIMIT, and the URL it gives for its
NAR may name a file below the cache or, over HTTP, another http(s) URL (as Nix allows),
never a local file.
"""

from __future__ import annotations

import os
import urllib.error
import urllib.request
from pathlib import Path
from typing import BinaryIO, Protocol
from urllib.parse import urljoin, urlsplit

from castore.errors import NotFoundError, ValidationError
from store.storepath import STORE_DIR

HTTP_TIMEOUT = 120
NARINFO_SUFFIX = ".narinfo"
NARINFO_LIMIT = 2 << 20
CACHE_INFO = "nix-cache-info"


class Source(Protocol):
    """Where narinfos and NAR files come from."""

    def cache_info(self) -> bytes:
        """Its `nix-cache-info`; NotFoundError when it has none."""

    def list(self) -> list[str]:
        """Hash parts of every path it holds; ValidationError when it cannot be listed."""

    def narinfo(self, hash_part: str) -> bytes:
        """The narinfo document; NotFoundError or FileNotFoundError when absent."""

    def open_nar(self, url: str) -> BinaryIO:
        """A reader of the NAR file the narinfo's URL names; NotFoundError or FileNotFoundError when absent."""


class FileSource:
    def __init__(self, root: Path) -> None:
        self.root = root

    def cache_info(self) -> bytes:
        if not self.root.is_dir():
            raise NotFoundError(f"{self.root}: no such directory")
        try:
            return self._file(CACHE_INFO).read_bytes()[:NARINFO_LIMIT]
        except (FileNotFoundError, IsADirectoryError):
            raise NotFoundError(f"{self.root}/{CACHE_INFO}: no such file") from None

    def list(self) -> list[str]:
        return sorted(p.name[:-len(NARINFO_SUFFIX)] for p in self.root.glob(f"*{NARINFO_SUFFIX}"))

    def narinfo(self, hash_part: str) -> bytes:
        return self._file(f"{hash_part}{NARINFO_SUFFIX}").read_bytes()

    def open_nar(self, url: str) -> BinaryIO:
        return self._file(url).open("rb")

    def _file(self, relative: str) -> Path:
        """A file below the root, never outside it (a narinfo's URL is untrusted input)."""
        path = Path(os.path.normpath(self.root / relative))
        if self.root not in path.parents:
            raise ValidationError(f"{relative!r} points outside the cache")
        return path


class HttpSource:
    """Blocking reads with urllib: one connection per request, errors as NotFoundError (403, 404),
    OSError (any other status, or no answer) or http.client.HTTPException (a broken answer)."""

    def __init__(self, base: str) -> None:
        self.base = base.rstrip("/") + "/"

    def cache_info(self) -> bytes:
        with self._open(CACHE_INFO) as response:
            return response.read(NARINFO_LIMIT)

    def list(self) -> list[str]:
        raise ValidationError("an HTTP cache cannot be listed: give root store paths (--roots FILE or STORE_PATH)")

    def narinfo(self, hash_part: str) -> bytes:
        with self._open(f"{hash_part}{NARINFO_SUFFIX}") as response:
            data = response.read(NARINFO_LIMIT + 1)
        if len(data) > NARINFO_LIMIT:
            raise ValidationError(f"{hash_part}{NARINFO_SUFFIX} is larger than {NARINFO_LIMIT} bytes")
        return data

    def open_nar(self, url: str) -> BinaryIO:
        return self._open(url)

    def _open(self, relative: str) -> BinaryIO:
        url = urljoin(self.base, relative)
        if urlsplit(url).scheme not in ("http", "https"):
            raise ValidationError(f"{relative[:120]!r} is not an http(s) URL")
        try:
            return urllib.request.urlopen(url, timeout=HTTP_TIMEOUT)
        except urllib.error.HTTPError as e:
            e.close()
            if e.code in (403, 404):
                raise NotFoundError(f"{url}: HTTP {e.code}") from None
            raise OSError(f"{url}: HTTP {e.code}") from None
        except urllib.error.URLError as e:
            raise OSError(f"{url}: {e.reason}") from None


def open_source(url: str) -> Source:
    """The cache at `url`, once it has shown it is one: a `nix-cache-info` for this store directory
    (a mistyped directory or URL would otherwise archive nothing, successfully)."""
    source = _source(url)
    try:
        info = source.cache_info().decode(errors="replace")
    except NotFoundError as e:
        raise ValidationError(f"{url} is not a Nix binary cache ({e})") from None
    store_dirs = [line.partition(":")[2].strip() for line in info.splitlines() if line.startswith("StoreDir:")]
    if any(d != STORE_DIR for d in store_dirs):
        raise ValidationError(f"{url} is a binary cache for {store_dirs[0][:120]!r}, not {STORE_DIR}")
    return source


def _source(url: str) -> Source:
    parts = urlsplit(url)
    if parts.scheme == "file" and not parts.netloc and parts.path.startswith("/"):
        return FileSource(Path(os.path.normpath(parts.path)))
    if parts.scheme in ("http", "https") and parts.netloc:
        return HttpSource(url)
    raise ValidationError(f"archive source {url!r} is not file:///dir or http(s)://host/path")
