"""Read-through: a path missing here is fetched from upstream binary caches, checked, and kept.

`--upstream nix+http(s)://host/path?trusted-public-keys=NAME:KEY [NAME:KEY ...]`. For a
miss, each upstream in order is asked for the narinfo; it must carry a valid signature
by one of that upstream's trusted keys. The NAR is then fetched, decompressed and
ingested while it streams through the verified ingest (FileHash, FileSize, NarHash and
NarSize checked), and the PathInfo is stored with every narinfo field. Concurrent misses
for one path share one fetch.

An upstream that has no such path, or whose answer fails a check (bad signature,
hash mismatch), is passed over (logged); when no upstream has it and one could not
be reached, the miss is a BackendError (502: Nix retries later) rather than a 404.
"""

from __future__ import annotations

import asyncio
import logging

import aiohttp
from yarl import URL

from castore.errors import BackendError, ValidationError
from store import nixbase32
from store.narinfo import NarInfo
from store.pathinfo.model import PathInfo
from store.pathinfo.nix_http import NixHttpCache as UpstreamCache  # the name the bridge's config knows
from store.signing import verify_narinfo
from store.url import Store
from store.verified_ingest import ingest_verified
from nar_bridge.bodies import read_limited
from nar_bridge.threads import BlockingReader, Workers

log = logging.getLogger(__name__)

NARINFO_LIMIT = 2 << 20
TIMEOUT = aiohttp.ClientTimeout(total=None, connect=30, sock_read=120)


class ReadThrough:
    def __init__(self, caches: tuple[UpstreamCache, ...], store: Store, workers: Workers) -> None:
        self._caches = caches
        self._store = store
        self._workers = workers
        self._session: aiohttp.ClientSession | None = None
        self._inflight: dict[bytes, asyncio.Task[PathInfo | None]] = {}

    async def fetch(self, digest: bytes) -> PathInfo | None:
        """The path's info, fetched once however many requests miss it at the same time."""
        task = self._inflight.get(digest)
        if task is None:
            task = self._inflight[digest] = asyncio.create_task(self._fetch(digest))
            task.add_done_callback(lambda done: self._forget(digest, done))
        return await asyncio.shield(task)  # a requester that goes away does not cancel the others' fetch

    def _forget(self, digest: bytes, task: asyncio.Task) -> None:
        self._inflight.pop(digest, None)
        if not task.cancelled():
            task.exception()  # retrieved here, so a fetch nobody waits for any more logs no warning

    async def _fetch(self, digest: bytes) -> PathInfo | None:
        hash_part = nixbase32.encode(digest)
        unreachable: list[str] = []
        for cache in self._caches:
            try:
                info = await self._fetch_from(cache, hash_part)
            except ValidationError as e:
                log.warning("upstream %s: %s.narinfo refused: %s", cache.base, hash_part, e)
                continue
            except (aiohttp.ClientError, asyncio.TimeoutError, BackendError) as e:
                log.warning("upstream %s: %s.narinfo: %s", cache.base, hash_part, e or type(e).__name__)
                unreachable.append(cache.base)
                continue
            if info is not None:
                return info
        if unreachable:
            raise BackendError(f"upstream {', '.join(unreachable)} could not be asked for {hash_part}")
        return None

    async def _fetch_from(self, cache: UpstreamCache, hash_part: str) -> PathInfo | None:
        session = self._client()
        async with session.get(f"{cache.base}/{hash_part}.narinfo") as response:
            if response.status in (403, 404):
                return None
            _check_status(response)
            narinfo = NarInfo.parse(await read_limited(response.content, NARINFO_LIMIT, response.content_length))
        if narinfo.store_path.hash_part != hash_part:
            raise ValidationError(f"narinfo is for {narinfo.store_path}")
        if not await self._workers.call(verify_narinfo, narinfo, cache.keys):
            raise ValidationError(f"no valid signature by a trusted key ({', '.join(k.name for k in cache.keys)})")
        nar_url = URL(cache.base + "/").join(URL(narinfo.url))
        async with session.get(nar_url) as response:
            _check_status(response)
            body = BlockingReader(response.content, asyncio.get_running_loop())
            info = await self._workers.stream(ingest_verified, self._store.castore, body, narinfo)
        log.info("substituted %s from %s", info.store_path, cache.base)
        return await self._workers.call(self._store.pathinfo.put, info)

    def _client(self) -> aiohttp.ClientSession:
        if self._session is None:
            self._session = aiohttp.ClientSession(timeout=TIMEOUT)
        return self._session

    async def close(self) -> None:
        for task in list(self._inflight.values()):
            task.cancel()
        if self._session is not None:
            await self._session.close()


def _check_status(response: aiohttp.ClientResponse) -> None:
    if response.status != 200:
        raise BackendError(f"{response.url}: HTTP {response.status}")

