"""`nix+http(s)://host/path?trusted-public-keys=NAME:KEY [NAME:KEY ...]`: path infos read through
an HTTP Nix binary cache (SPEC 8), read-only.

get() fetches `<hash>.narinfo`; it is believed only with a valid signature by a trusted key,
or, unsigned, when content-addressed and self-certifying as in Nix (the store path
recomputed from its CA and references is its own, and the content has that CA hash).
The NAR file is then fetched and put through the verified ingest into the castore this
service is composed with (FileHash, FileSize, NarHash, NarSize checked), and the PathInfo
keeps every narinfo field. Concurrent gets for one path share one fetch.

This service keeps no path infos: composed behind a near/far cache, the near store keeps
what it reads. A refused narinfo is logged (one line) and reads as absent; an upstream that
cannot be asked is a BackendError, so a caller can tell "not there" from "try later".
"""

from __future__ import annotations

import http.client
import logging
from dataclasses import dataclass
from typing import Iterator
from urllib.parse import unquote, urlsplit, urlunsplit

from castore.errors import BackendError, NotFoundError, ValidationError
from castore.nodes import Node
from castore.singleflight import SingleFlight
from castore.url import CAStore
from store import nixbase32
from store.binary_cache import HttpSource
from store.narinfo import NarInfo
from store.pathinfo.model import PathInfo
from store.pathinfo.service import PathInfoService
from store.selfcertifying import gives_its_path, has_ca_hash
from store.signing import PublicKey, verify_narinfo
from store.storepath import DIGEST_SIZE
from store.verified_ingest import ingest_verified

log = logging.getLogger(__name__)

SCHEMES = ("nix+http", "nix+https")


@dataclass(frozen=True)
class NixHttpCache:
    """A parsed `nix+http(s)://` URL: the cache's http(s) base and the keys it is trusted with."""

    base: str  # http(s)://host/path, no trailing slash
    keys: tuple[PublicKey, ...]

    @classmethod
    def parse(cls, url: str) -> NixHttpCache:
        """'+' in a key stays '+' (the query is not form-decoded); unknown parameters are refused."""
        parts = urlsplit(url)
        if parts.scheme not in SCHEMES or not parts.netloc:
            raise ValidationError(f"{url!r} is not nix+http(s)://host/path?trusted-public-keys=NAME:KEY")
        keys: list[PublicKey] = []
        for item in filter(None, parts.query.split("&")):
            name, _, value = item.partition("=")
            if unquote(name) != "trusted-public-keys":
                raise ValidationError(f"{url!r}: unknown parameter {unquote(name)!r} (trusted-public-keys=...)")
            keys.extend(PublicKey.parse(k) for k in unquote(value).split())
        if not keys:
            raise ValidationError(f"{url!r} needs trusted-public-keys=NAME:KEY")
        base = urlunsplit((parts.scheme[len("nix+"):], parts.netloc, parts.path.rstrip("/"), "", ""))
        return cls(base, tuple(keys))


class NixHttpPathInfoService(PathInfoService):
    """Blocking, safe to call from many threads."""

    def __init__(self, url: str, castore: CAStore) -> None:
        self._cache = NixHttpCache.parse(url)
        self._source = HttpSource(self._cache.base)
        self._castore = castore
        self._flights: SingleFlight[bytes, PathInfo | None] = SingleFlight()

    def get(self, digest: bytes) -> PathInfo | None:
        if len(digest) != DIGEST_SIZE:
            raise ValidationError(f"store path digest must be {DIGEST_SIZE} bytes, got {len(digest)}")
        return self._flights.run(bytes(digest), lambda: self._fetch(nixbase32.encode(digest)))

    def put(self, info: PathInfo) -> PathInfo:
        raise ValidationError(f"{self._cache.base} is read through, read-only: {info.store_path} cannot be put there")

    def list(self) -> Iterator[PathInfo]:
        return iter(())  # a binary cache over HTTP cannot be listed

    def calculate_nar(self, node: Node) -> tuple[int, bytes]:
        from store.nar.render import calculate_nar

        return calculate_nar(self._castore, node)

    def get_by_nar_sha256(self, nar_sha256: bytes) -> PathInfo | None:
        return None  # a binary cache has no index by NAR hash

    def _fetch(self, hash_part: str) -> PathInfo | None:
        try:
            return self._fetch_checked(hash_part)
        except ValidationError as e:
            log.warning("%s: %s.narinfo refused: %s", self._cache.base, hash_part, e)
            return None
        except (OSError, http.client.HTTPException, NotFoundError) as e:
            raise BackendError(f"{self._cache.base}: {hash_part}: {e or type(e).__name__}") from None

    def _fetch_checked(self, hash_part: str) -> PathInfo | None:
        """The checked PathInfo; ValidationError when the cache's answer is refused."""
        try:
            narinfo = NarInfo.parse(self._source.narinfo(hash_part))
        except NotFoundError:
            return None
        if narinfo.store_path.hash_part != hash_part:
            raise ValidationError(f"the narinfo describes {narinfo.store_path}")
        signed = verify_narinfo(narinfo, self._cache.keys)
        if not signed and not gives_its_path(narinfo.store_path, narinfo.ca, narinfo.references):
            raise ValidationError(f"no valid signature by a trusted key ({', '.join(k.name for k in self._cache.keys)})"
                                  f"{'' if narinfo.ca is None else ', and its CA does not give its store path'}")
        with self._source.open_nar(narinfo.url) as raw:
            info = ingest_verified(self._castore, raw, narinfo)
        if not signed and not has_ca_hash(self._castore, info):
            raise ValidationError(f"the contents do not have the hash of CA {narinfo.ca}")
        log.info("read %s through %s", info.store_path, self._cache.base)
        return info
