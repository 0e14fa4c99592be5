"""The read side's small documents: `nix-cache-info`, `<hash>.narinfo` and `<hash>.ls`.

A served narinfo points at the stable `nar/<NarHash>.nar`, uncompressed (so FileHash
and FileSize are NarHash and NarSize) and lists the signatures the store gives (with
`--sign-key`, a signing wrapper adds one per key). References are written sorted, as Nix
writes them (the order Nix verifies signatures in). An archived path's System and unknown
keys (narinfo extras) are served too, so its narinfo keeps every line it had.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from typing import Callable, TypeVar

from aiohttp import web

from castore.errors import ValidationError
from store.narinfo import NarInfo, NarinfoExtras
from store.nixhash import HashAlgo, NixHash
from store.nar.layout import NarLayout
from store.pathinfo.model import PathInfo
from nar_bridge.bridge import BRIDGE
from nar_bridge.listing import listing_pieces
from nar_bridge.names import NarFile, parse_hash_part
from nar_bridge.threads import PieceChannel

log = logging.getLogger(__name__)

NARINFO_TYPE = "text/x-nix-narinfo"
T = TypeVar("T")


async def get_cache_info(request: web.Request) -> web.Response:
    priority = request.app[BRIDGE].config.priority
    return web.Response(text=f"StoreDir: /nix/store\nWantMassQuery: 1\nPriority: {priority}\n",
                        content_type="text/x-nix-cache-info")


async def get_narinfo(request: web.Request) -> web.Response:
    bridge = request.app[BRIDGE]
    digest = _digest(request)
    text = bridge.recent_narinfos.get(digest)
    if text is None:
        text = await _for_path(request, digest, lambda info: served_narinfo(info).render())
        bridge.recent_narinfos.put(digest, text)
    return web.Response(text=text, content_type=NARINFO_TYPE)


async def get_listing(request: web.Request) -> web.StreamResponse:
    """The layout comes from the cache NAR serving shares: a client reads the listing, then ranges.
    The document is written in a worker as it is sent, never held whole."""
    bridge = request.app[BRIDGE]

    def layout(info: PathInfo) -> NarLayout:
        return bridge.closures.get(bridge.store.castore.directories, info.node).layout

    pieces = listing_pieces(await _for_path(request, _digest(request), layout))
    response = web.StreamResponse(headers={"Content-Type": "application/json"})
    await response.prepare(request)
    if request.method == "HEAD":
        return response
    channel = PieceChannel(asyncio.get_running_loop())
    bridge.workers.stream(channel.feed, pieces)
    try:
        while (piece := await channel.get()) is not None:
            await response.write(piece)
        await response.write_eof()
    except ConnectionError:
        log.debug("client of %s went away", request.path)
    finally:
        channel.close()
    return response


def _digest(request: web.Request) -> bytes:
    """The store path digest of the URL's hash; 404 for junk names."""
    try:
        return parse_hash_part(request.match_info["hash"])
    except ValidationError:
        raise web.HTTPNotFound(text="not a store path hash\n") from None


async def _for_path(request: web.Request, digest: bytes, then: Callable[[PathInfo], T]) -> T:
    """`then(info)` for the path with this digest; 404 when nobody has it."""
    result = await request.app[BRIDGE].with_path_info(digest, then)
    if result is None:
        raise web.HTTPNotFound(text="no such path in this cache\n")
    return result


def served_narinfo(info: PathInfo) -> NarInfo:
    """The narinfo of a stored path as this bridge serves it (with the signatures the store gives it)."""
    extras = info.extras or NarinfoExtras()
    narinfo = NarInfo(
        store_path=info.store_path, url=NarFile(info.nar_sha256, "none").url,
        nar_hash=info.nar_sha256, nar_size=info.nar_size, compression="none",
        file_hash=NixHash(HashAlgo.SHA256, info.nar_sha256), file_size=info.nar_size,
        references=tuple(sorted(info.references)), deriver=info.deriver, ca=info.ca,
        system=extras.system, unknown=extras.unknown)
    return dataclasses.replace(narinfo, signatures=info.signatures)
