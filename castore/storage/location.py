"""Where an engine's two stores are: the URL of a store turned into its metadata and pack stores.

| URL                                               | metadata                 | packs                      |
|---------------------------------------------------|--------------------------|----------------------------|
| local:///dir                                      | LMDB in dir/meta         | files in dir/packs         |
| local:///dir?packs=s3://BUCKET/PREFIX             | LMDB in dir/meta         | S3-compatible object store |
| local:///dir?packs=file:///shared                 | LMDB in dir/meta         | files in /shared           |
| postgresql://[user@][host][:port]/DB?host=/sock&packs=s3://BUCKET/PREFIX (or file:///dir) | PostgreSQL | as given |

`packs-cache=/abs/dir` (with `packs-cache-bytes=N`, default 1 GiB) keeps recently read ranges
of packs in a bounded directory on this machine, in front of remote packs.

Object-storage credentials and endpoint come from the standard AWS_* environment, never from
a URL. Backend modules are imported only for the URLs that need them.
"""

from __future__ import annotations

import os
from typing import NamedTuple

from castore.errors import ValidationError
from castore.storage.metadata import MetadataStore
from castore.storage.packs import PackStore
from castore.urlparts import split_url

PACKS, CACHE, CACHE_BYTES = "packs", "packs-cache", "packs-cache-bytes"
DEFAULT_CACHE_BYTES = 1 << 30


class Location(NamedTuple):
    """The normalised URLs of a store's metadata and packs (also the engine registry's key)."""

    metadata: str
    packs: str
    cache: str | None = None
    """A directory of recently read pack ranges, bounded by `cache_bytes`."""
    cache_bytes: int = DEFAULT_CACHE_BYTES

    @classmethod
    def parse(cls, url: str) -> Location:
        parts = split_url(url)
        if parts.scheme == "local" and not parts.query and not parts.netloc and parts.path.startswith("/"):
            return cls.local(parts.path)  # the usual URL: no parameters to parse
        from urllib.parse import parse_qsl, urlencode, urlunsplit

        from castore.url import local_path

        try:
            params = dict(parse_qsl(parts.query, keep_blank_values=True, strict_parsing=bool(parts.query)))
        except ValueError:
            raise ValidationError(f"bad query in {url!r}: expected name=value&...") from None
        packs = params.pop(PACKS, None)
        cache = _cache_dir(params.pop(CACHE, None))
        cache_bytes = _size(params.pop(CACHE_BYTES, None))
        rest = urlunsplit((parts.scheme, parts.netloc, parts.path, urlencode(params), ""))
        if parts.scheme == "local":
            if params:
                raise ValidationError(f"unknown parameter {next(iter(params))!r} in {url!r} "
                                      f"(known: {PACKS}, {CACHE}, {CACHE_BYTES})")
            return cls.local(local_path(rest), packs, cache, cache_bytes)
        if parts.scheme == "postgresql":
            if not packs:
                raise ValidationError(f"{url!r} needs packs=s3://BUCKET/PREFIX or packs=file:///dir")
            return cls(rest, _packs_url(packs), cache, cache_bytes)
        raise ValidationError(f"not a store location: {url!r} (local:///dir, postgresql://...?packs=...)")

    @classmethod
    def local(cls, directory: str, packs: str | None = None, cache: str | None = None,
              cache_bytes: int = DEFAULT_CACHE_BYTES) -> Location:
        """A local store's: LMDB in `directory`/meta, packs in `directory`/packs unless `packs` says where."""
        directory = os.path.realpath(directory)
        return cls(f"lmdb://{os.path.join(directory, 'meta')}",
                   _packs_url(packs) if packs else f"file://{os.path.join(directory, 'packs')}",
                   cache, cache_bytes)

    def open_metadata(self) -> MetadataStore:
        metadata = split_url(self.metadata)
        if metadata.scheme == "lmdb":
            from castore.storage.metadata_lmdb import LmdbMetadataStore

            return LmdbMetadataStore.open(metadata.path)
        from castore.storage.metadata_postgres import PostgresMetadataStore

        return PostgresMetadataStore.open(self.metadata)

    def open_packs(self) -> PackStore:
        parts = split_url(self.packs)
        if parts.scheme == "file":
            from castore.storage.packs_fs import FsPackStore

            packs: PackStore = FsPackStore(parts.path)
        else:
            from castore.storage.packs_s3 import S3PackStore

            packs = S3PackStore(self.packs)
        if self.cache is None:
            return packs
        from castore.storage.packs_cache import CachedPackStore

        return CachedPackStore(packs, self.cache, self.cache_bytes)


def _packs_url(url: str) -> str:
    from urllib.parse import urlsplit

    parts = urlsplit(url)
    if parts.scheme == "file":
        if parts.netloc or not parts.path.startswith("/") or parts.query:
            raise ValidationError(f"packs=file:///abs/dir, not {url!r}")
        return f"file://{os.path.realpath(parts.path)}"
    if parts.scheme == "s3":
        if not parts.netloc:
            raise ValidationError(f"packs=s3://BUCKET/PREFIX names a bucket: {url!r}")
        return url
    raise ValidationError(f"packs must be s3://BUCKET/PREFIX or file:///dir, not {url!r}")


def _cache_dir(value: str | None) -> str | None:
    if value is None:
        return None
    if not value.startswith("/"):
        raise ValidationError(f"{CACHE}=/abs/dir, not {value!r}")
    return os.path.realpath(value)


def _size(value: str | None) -> int:
    if value is None:
        return DEFAULT_CACHE_BYTES
    if not value.isdigit() or int(value) <= 0:
        raise ValidationError(f"{CACHE_BYTES} is a positive number of bytes, not {value!r}")
    return int(value)
