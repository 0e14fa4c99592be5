"""Where an engine's two stores are: the URL of a store turned into its metadata and pack stores.

| URL                                               | metadata                 | packs                      |
|---------------------------------------------------|--------------------------|----------------------------|
| local:///dir                                      | LMDB in dir/meta         | files in dir/packs         |
| local:///dir?packs=s3://BUCKET/PREFIX             | LMDB in dir/meta         | S3-compatible object store |
| local:///dir?packs=file:///shared                 | LMDB in dir/meta         | files in /shared           |
| postgresql://[user@][host][:port]/DB?host=/sock&packs=s3://BUCKET/PREFIX (or file:///dir) | PostgreSQL | as given |

Object-storage credentials and endpoint come from the standard AWS_* environment, never from
a URL. Backend modules are imported only for the URLs that need them.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from castore.errors import ValidationError
from castore.storage.metadata import MetadataStore
from castore.storage.packs import PackStore

PACKS = "packs"


@dataclass(frozen=True)
class Location:
    """The normalised URLs of a store's metadata and packs (also the engine registry's key)."""

    metadata: str
    packs: str

    @classmethod
    def parse(cls, url: str) -> Location:
        parts = urlsplit(url)
        try:
            params = dict(parse_qsl(parts.query, keep_blank_values=True, strict_parsing=bool(parts.query)))
        except ValueError:
            raise ValidationError(f"bad query in {url!r}: expected name=value&...") from None
        packs = params.pop(PACKS, None)
        rest = urlunsplit((parts.scheme, parts.netloc, parts.path, urlencode(params), ""))
        if parts.scheme == "local":
            if params:
                raise ValidationError(f"unknown parameter {next(iter(params))!r} in {url!r} (known: packs)")
            from castore.url import local_path

            directory = os.path.realpath(local_path(rest))
            return cls(f"lmdb://{os.path.join(directory, 'meta')}",
                       _packs_url(packs) if packs else f"file://{os.path.join(directory, 'packs')}")
        if parts.scheme == "postgresql":
            if not packs:
                raise ValidationError(f"{url!r} needs packs=s3://BUCKET/PREFIX or packs=file:///dir")
            return cls(rest, _packs_url(packs))
        raise ValidationError(f"not a store location: {url!r} (local:///dir, postgresql://...?packs=...)")

    def open_metadata(self) -> MetadataStore:
        scheme = urlsplit(self.metadata).scheme
        if scheme == "lmdb":
            from castore.storage.metadata_lmdb import LmdbMetadataStore

            return LmdbMetadataStore.open(urlsplit(self.metadata).path)
        from castore.storage.metadata_postgres import PostgresMetadataStore

        return PostgresMetadataStore.open(self.metadata)

    def open_packs(self) -> PackStore:
        parts = urlsplit(self.packs)
        if parts.scheme == "file":
            from castore.storage.packs_fs import FsPackStore

            return FsPackStore(parts.path)
        from castore.storage.packs_s3 import S3PackStore

        return S3PackStore(self.packs)


def _packs_url(url: str) -> str:
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
