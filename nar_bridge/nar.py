"""Serving NARs: rendered from castore in a worker, streamed with bounded memory.

Every error a client can be told about is decided before the response headers: the
worker first gets the NAR's layout (see `closures`), checks that every blob exists
and that the NAR has the size the headers will announce, then renders, and the handler
sends headers only once the first piece is there. A failure after that (a chunk that no
longer matches its digest) aborts the connection, so the client sees a broken transfer,
never a short 200. Pieces are rendered at HANDOFF_SIZE: one join and one handoff to the event
loop each.

With a NAR cache (see nar_cache), an uncompressed NAR named by its NarHash is sent from its
cache file with sendfile, as are ranges of NARs already cached. On a miss the NAR streams as
above (the same checks before the headers, the same abort after them) and its bytes are teed
into the cache, where they are kept only when the whole NAR was rendered and matched NarHash.

Single byte ranges are answered 206, reading only the files the range overlaps (see
store.nar.render); `Content-Encoding: zstd` is used when the client accepts it and
asked for the whole NAR. An upload's compressed name (`.nar.xz`, ...) is served
compressed again: Nix keeps the narinfo it uploaded and fetches that URL later.
"""

from __future__ import annotations

import asyncio
import logging
import re
from dataclasses import dataclass
from typing import BinaryIO, Iterable, Iterator

from aiohttp import web

from castore.errors import BackendError, ValidationError
from castore.nodes import Node
from castore.turns import in_turns
from store.nar.layout import NarLayout
from store.nar.render import render_range
from nar_bridge.bridge import BRIDGE, Bridge, root_exists
from nar_bridge.closures import ClosureCache
from store.compression import compressing
from store.decimal import parse_u64
from store.url import Store
from nar_bridge.names import NarFile, parse_castore_nar
from nar_bridge.nar_cache import Fill, NarCache, teed
from nar_bridge.threads import PieceChannel

log = logging.getLogger(__name__)

NAR_TYPE = "application/x-nix-nar"
HANDOFF_SIZE = 1 << 20
_RANGE = re.compile(r"bytes=(\d*)-(\d*)", re.ASCII)
_ZERO_Q = re.compile(r"q\s*=\s*0(\.0*)?")


@dataclass(frozen=True, slots=True)
class ByteRange:
    first: int
    last: int  # inclusive, as in Content-Range

    @property
    def length(self) -> int:
        return self.last - self.first + 1


async def get_nar_file(request: web.Request) -> web.StreamResponse:
    """GET/HEAD `nar/<hash>.nar[.ext]`: a path's NAR by NarHash, or an upload by the name it was sent as."""
    bridge = request.app[BRIDGE]
    try:
        nar_file = NarFile.parse(request.match_info["name"])
    except ValidationError:
        raise web.HTTPNotFound(text="no such NAR\n") from None
    found = bridge.recent_nars.get(nar_file.name)
    if found is None:
        found = await bridge.workers.call(bridge.find_nar, nar_file)
        if found is None:
            raise web.HTTPNotFound(text=f"{nar_file.url} is not in this cache\n")
        bridge.recent_nars.put(nar_file.name, found)
    return await serve_nar(request, bridge, found.node, found.nar_size, nar_file.compression, found.nar_sha256)


async def get_castore_nar(request: web.Request) -> web.StreamResponse:
    """GET/HEAD `nar/tvix-castore/<node>?narsize=N`: stateless, from the node in the URL."""
    node, nar_size = parse_castore_nar(request.match_info["node"], request.query.get("narsize"))
    return await serve_nar(request, request.app[BRIDGE], node, nar_size)


async def serve_nar(request: web.Request, bridge: Bridge, node: Node, nar_size: int,
                    file_compression: str = "none", nar_sha256: bytes | None = None) -> web.StreamResponse:
    """The NAR, or for an upload's compressed name the NAR compressed that way (no length, no ranges).
    Uncompressed, by NarHash, it comes from the rendered-NAR cache when the bridge has one."""
    if file_compression != "none":
        byte_range, compression = None, file_compression
        headers = {"Content-Type": NAR_TYPE}
    else:
        byte_range = parse_range(request.headers.get("Range"), nar_size)
        transport = byte_range is None and accepts_zstd(request.headers.get("Accept-Encoding", ""))
        compression = "zstd" if transport else "none"
        headers = _headers(nar_size, byte_range, transport)
    response = web.StreamResponse(status=206 if byte_range else 200, headers=headers)
    if request.method == "HEAD":
        if not await bridge.workers.call(root_exists, bridge.store.castore, node):
            raise web.HTTPNotFound(text="the NAR's contents are not in the store\n")
        await response.prepare(request)
        return response
    fill = None
    if compression == "none" and nar_sha256 is not None and bridge.nar_cache is not None \
            and bridge.nar_cache.fits(nar_size):
        cached = await _cached(bridge, bridge.nar_cache, nar_size, nar_sha256, byte_range)
        if isinstance(cached, Fill):
            fill = cached
        elif cached is not None:
            with cached:
                return await _send_file(request, response, cached, byte_range or ByteRange(0, nar_size - 1))
    body = nar_body(bridge.store, bridge.closures, node, nar_size, byte_range, compression)
    channel = PieceChannel(asyncio.get_running_loop())
    bridge.workers.stream(channel.feed, body if fill is None else teed(body, fill))
    try:
        piece = await channel.get()  # preflight errors surface here, before any header is sent
        await response.prepare(request)
        while piece is not None:
            if not await _sent(response, piece, bridge.config.stall_timeout):
                log.warning("client of %s took nothing for %g s; closing its connection", request.path,
                            bridge.config.stall_timeout)
                if request.transport is not None:
                    request.transport.abort()
                return response
            piece = await channel.get()
        await response.write_eof()
    except ConnectionError:
        log.debug("client of %s went away", request.path)
    except Exception:
        if not response.prepared:
            raise
        log.exception("NAR stream of %s failed after the headers; aborting the connection", request.path)
        if request.transport is not None:
            request.transport.abort()
    finally:
        channel.close()
    return response


async def _sent(response: web.StreamResponse, piece: bytes, timeout: float) -> bool:
    """Write `piece`; False when the client took too little of it for `timeout` seconds to let the
    write finish (the render waits on this client, holding a stream worker)."""
    try:
        async with asyncio.timeout(timeout):
            await response.write(piece)
    except TimeoutError:
        return False
    return True


async def _cached(bridge: Bridge, cache: NarCache, nar_size: int, nar_sha256: bytes,
                  byte_range: ByteRange | None) -> BinaryIO | Fill | None:
    """The NAR's cache file; for the whole NAR when it is missing, a Fill to tee its render into
    (see NarCache.lookup). A range is only served from the cache when the NAR is there already."""
    if byte_range is not None:
        return await bridge.workers.stream(cache.open, nar_sha256, nar_size)  # may hash a file: not quick
    return await bridge.workers.stream(cache.lookup, nar_sha256, nar_size)


async def _send_file(request: web.Request, response: web.StreamResponse, file: BinaryIO,
                     byte_range: ByteRange) -> web.StreamResponse:
    """The range of a file as the body, by sendfile: the kernel copies it, not this process."""
    await response.prepare(request)
    if request.transport is None:
        raise ConnectionResetError("the client went away")
    try:
        if byte_range.length:
            await asyncio.get_running_loop().sendfile(request.transport, file, byte_range.first, byte_range.length)
        await response.write_eof()
    except ConnectionError:
        log.debug("client of %s went away", request.path)
    return response


def _headers(nar_size: int, byte_range: ByteRange | None, compress: bool) -> dict[str, str]:
    headers = {"Content-Type": NAR_TYPE, "Accept-Ranges": "bytes", "Vary": "Accept-Encoding"}
    if byte_range is not None:
        headers["Content-Range"] = f"bytes {byte_range.first}-{byte_range.last}/{nar_size}"
        headers["Content-Length"] = str(byte_range.length)
    elif compress:
        headers["Content-Encoding"] = "zstd"
    else:
        headers["Content-Length"] = str(nar_size)
    return headers


def parse_range(header: str | None, size: int) -> ByteRange | None:
    """One `bytes=` range, clamped to the NAR; None for no (or an unusable) Range: the whole NAR.

    Several ranges are answered with the whole NAR, which HTTP allows; a range that
    starts past the end is 416.
    """
    if header is None:
        return None
    m = _RANGE.fullmatch(header.strip())
    if m is None or not (m[1] or m[2]):
        return None
    if not m[1]:  # the last N bytes
        suffix = _position(m[2])
        if suffix == 0:
            raise _unsatisfiable(size)
        return ByteRange(max(size - suffix, 0), size - 1)
    first = _position(m[1])
    last = min(_position(m[2]), size - 1) if m[2] else size - 1
    if m[2] and _position(m[2]) < first:
        return None  # syntactically invalid: ignored, like no Range at all
    if first >= size:
        raise _unsatisfiable(size)
    return ByteRange(first, last)


def _position(digits: str) -> int:
    return parse_u64(digits, "a Range position")


def _unsatisfiable(size: int) -> web.HTTPRequestRangeNotSatisfiable:
    return web.HTTPRequestRangeNotSatisfiable(headers={"Content-Range": f"bytes */{size}"})


def accepts_zstd(accept_encoding: str) -> bool:
    """Whether `Accept-Encoding` lists zstd without q=0."""
    for item in accept_encoding.lower().split(","):
        coding, _, params = item.partition(";")
        if coding.strip() == "zstd":
            return not _ZERO_Q.fullmatch(params.strip())
    return False


def nar_body(store: Store, closures: ClosureCache, node: Node, nar_size: int, byte_range: ByteRange | None,
             compression: str) -> Iterator[bytes]:
    """The rendered (ranged, compressed) pieces; a generator, so the layout and its checks too run in
    the worker, and each piece is made in a turn of the process's renders (see castore.turns).
    `nar_size` is checked against the layout (a castore URL's narsize comes from the client)."""
    return in_turns(_rendered(store, closures, node, nar_size, byte_range, compression))


def _rendered(store: Store, closures: ClosureCache, node: Node, nar_size: int, byte_range: ByteRange | None,
              compression: str) -> Iterator[bytes]:
    """A whole NAR comes from the path-info service, which a remote daemon answers by rendering
    it in its own store (only the bytes travel); a range reads the blobs it overlaps."""
    castore = store.castore
    layout = _sized(closures.checked(castore, node), nar_size)
    if byte_range is None:
        whole = store.pathinfo.nar(castore, node, layout=layout, flush=HANDOFF_SIZE)  # joined once, not twice
        pieces = _exactly(whole, nar_size)
    else:
        pieces = render_range(castore.blobs, layout, byte_range.first, byte_range.last + 1)
    yield from _coalesce(compressing(pieces, compression))


def _sized(layout: NarLayout, nar_size: int) -> NarLayout:
    if layout.size != nar_size:
        raise ValidationError(f"the NAR of this node has {layout.size} bytes, not {nar_size}")
    return layout


def _exactly(pieces: Iterable[bytes], nar_size: int) -> Iterator[bytes]:
    """The pieces, which a daemon may have sent: not one byte more or fewer than the Content-Length
    announced (a failure after the headers aborts the connection)."""
    left = nar_size
    for piece in pieces:
        left -= len(piece)
        if left < 0:
            raise BackendError(f"the NAR came longer than its {nar_size} bytes")
        yield piece
    if left:
        raise BackendError(f"the NAR came {left} bytes short of its {nar_size}")


def _coalesce(pieces: Iterable[bytes]) -> Iterator[bytes]:
    """Pieces of at least HANDOFF_SIZE (but the last): each handoff to the event loop costs the same.
    A piece that large already passes without a copy."""
    pending: list[bytes] = []
    size = 0
    for piece in pieces:
        pending.append(piece)
        size += len(piece)
        if size >= HANDOFF_SIZE:
            yield pending[0] if len(pending) == 1 else b"".join(pending)
            pending.clear()
            size = 0
    if size:
        yield b"".join(pending)
