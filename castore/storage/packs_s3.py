"""Packs as objects in an S3-compatible bucket: `PREFIX/packs/<first 2 hex digits>/<name>`.

Object storage bills and waits per request, so every operation here is as few requests as it
can be: a put is one conditional PUT (`If-None-Match: *`), whose "already exists" answer means
a retry or a racing writer stored the same bytes under the same name first, which is success;
the ranges of one read are merged where they lie close and fetched in one `get_ranges` call.
`requests` counts what was sent, by operation, for the figures (retries obstore makes inside
one call are not seen here).

The endpoint and credentials come only from the standard AWS_* environment (AWS_ENDPOINT_URL,
AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_REGION, AWS_ALLOW_HTTP), never from the URL, so
a store URL in a config file, a process list or a log carries no secret.
"""

from __future__ import annotations

import math
import os
import re
import threading
from bisect import bisect_right
from collections import Counter
from contextlib import contextmanager
from datetime import timedelta
from typing import Iterator, Sequence
from urllib.parse import urlsplit

import obstore
from obstore.exceptions import AlreadyExistsError, BaseError
from obstore.store import S3Store

from castore.errors import BackendError, CorruptionError, ValidationError
from castore.storage.packs import PackStore, check_name

COALESCE = 1 << 20
"""Ranges of one read less than this many bytes apart are fetched by one GET: below about a
MiB, sending the gap costs less than another request's round trip (obstore's default too)."""

LIST_PAGE = 1000
"""Keys S3 returns per list request at most."""

RETRIES = {"max_retries": 5, "retry_timeout": timedelta(seconds=15)}
"""Transient failures (5xx, a dropped connection) are retried with backoff, but a store that is
down is reported within seconds, not after obstore's default three minutes."""

_BUCKET = re.compile(r"[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]")
_OBJECT = re.compile(r"packs/([0-9a-f]{2})/([0-9a-f]{64})")


def parse_url(url: str) -> tuple[str, str]:
    """(bucket, prefix) of `s3://BUCKET[/PREFIX]`; ValidationError for anything else, including a
    URL that tries to carry an endpoint or credentials."""
    parts = urlsplit(url)
    if parts.scheme != "s3":
        raise ValidationError(f"not an s3:// URL: {url!r}")
    if "@" in parts.netloc or ":" in parts.netloc:
        raise ValidationError(f"{url!r}: endpoint and credentials come from the AWS_* environment, "
                              "never from the URL")
    if parts.query or parts.fragment:
        raise ValidationError(f"{url!r}: an s3:// pack store URL takes no query or fragment")
    if not _BUCKET.fullmatch(parts.netloc):
        raise ValidationError(f"{url!r}: the bucket must be 3-63 lowercase letters, digits, dots, hyphens")
    segments = [s for s in parts.path.split("/") if s]
    if any(s in (".", "..") for s in segments):
        raise ValidationError(f"{url!r}: the prefix may not contain . or .. segments")
    return parts.netloc, "/".join(segments)


class S3PackStore(PackStore):
    pack_bytes = 64 * 1024 * 1024
    """Object storage bills per request: 64 MiB packs take about 16 PUTs per GiB ingested (24 MiB
    ones 43), for a writer peak about 100 MB higher."""

    def __init__(self, url: str) -> None:
        self.bucket, self.prefix = parse_url(url)
        self.requests: Counter[str] = Counter()
        self._count_lock = threading.Lock()
        self._endpoint = os.environ.get("AWS_ENDPOINT_URL", "S3")
        self._store = S3Store(self.bucket, prefix=self.prefix or None, retry_config=RETRIES)

    def key(self, name: str) -> str:
        """The object key of a pack, below the store's prefix."""
        return f"packs/{name[:2]}/{name}"

    def put(self, name: str, data: bytes | memoryview) -> None:
        key = self.key(check_name(name))
        with memoryview(data) as view, view.cast("B") as flat, self._errors(f"store pack {name}"):
            self._count("put")
            try:
                obstore.put(self._store, key, flat, mode="create")
            except AlreadyExistsError:
                pass  # same name, same bytes: a retry or a racing writer got there first

    def read(self, name: str, ranges: Sequence[tuple[int, int]]) -> list[bytes]:
        key = self.key(check_name(name))
        wanted = [(offset, length) for offset, length in ranges if length > 0]
        if not wanted:
            if ranges:
                self._size(name, key)  # a missing pack is an error even for empty ranges
            return [b""] * len(ranges)
        spans = _merge(wanted)
        try:
            with self._errors(f"read pack {name}", missing=name):
                self._count("get", len(spans))
                fetched = obstore.get_ranges(self._store, key, starts=[s for s, _ in spans],
                                             ends=[e for _, e in spans], coalesce=0)
        except BackendError:
            # A span that starts past the end is refused (416), not cut short: ask for the size.
            end = max(e for _, e in spans)
            if (size := self._size(name, key)) < end:
                raise CorruptionError(f"pack {name} is truncated: {size} bytes, a range ends at {end}") from None
            raise
        return [_cut(name, spans, fetched, offset, length) for offset, length in ranges]

    def list(self) -> Iterator[tuple[str, int]]:
        with self._errors("list packs"):
            self._count("list")  # the first page; each full page means one request more
            for page in obstore.list(self._store, "packs/", chunk_size=LIST_PAGE):
                if len(page) == LIST_PAGE:
                    self._count("list")
                for meta in page:
                    found = _OBJECT.fullmatch(meta["path"])
                    if found and found[2].startswith(found[1]):
                        yield found[2], meta["size"]

    def delete(self, name: str) -> None:
        key = self.key(check_name(name))
        with self._errors(f"delete pack {name}"):
            self._count("delete")
            obstore.delete(self._store, key)

    def close(self) -> None:
        """Nothing to release: obstore's client holds pooled connections only, dropped with it."""

    def _size(self, name: str, key: str) -> int:
        with self._errors(f"read pack {name}", missing=name):
            self._count("head")
            return obstore.head(self._store, key)["size"]

    def _count(self, operation: str, requests: int = 1) -> None:
        with self._count_lock:
            self.requests[operation] += requests

    @contextmanager
    def _errors(self, action: str, missing: str | None = None) -> Iterator[None]:
        """obstore's errors as castore's: the missing pack of a read is corruption (a record names
        it), any other failure a one-line BackendError naming the endpoint."""
        try:
            yield
        except (FileNotFoundError, BaseError) as error:
            if missing is not None and isinstance(error, FileNotFoundError):
                raise CorruptionError(f"pack {missing} is referenced but missing from "
                                      f"s3://{self.bucket}/{self.prefix}") from None
            first = (str(error).splitlines() or [type(error).__name__])[0]
            raise BackendError(f"object storage at {self._endpoint} could not {action}: {first[:300]}") from None


def _merge(ranges: list[tuple[int, int]]) -> list[tuple[int, int]]:
    """(start, end) spans covering every (offset, length), merging those less than COALESCE apart."""
    spans: list[list[int]] = []
    for offset, length in sorted(ranges):
        if spans and offset - spans[-1][1] < COALESCE:
            spans[-1][1] = max(spans[-1][1], offset + length)
        else:
            spans.append([offset, offset + length])
    return [(start, end) for start, end in spans]


def _cut(name: str, spans: list[tuple[int, int]], fetched: list, offset: int, length: int) -> bytes:
    """The bytes of one range out of the span that holds it; CorruptionError if the object ended
    before the range did."""
    if length == 0:
        return b""
    at = bisect_right(spans, (offset, math.inf)) - 1  # the span starting at or before offset
    start = spans[at][0]
    piece = memoryview(fetched[at])[offset - start:offset - start + length]
    if len(piece) != length:
        raise CorruptionError(f"pack {name} is truncated: wanted {length} bytes at {offset}, got {len(piece)}")
    return bytes(piece)
