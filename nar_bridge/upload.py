"""The write side, as `nix copy --to http://...` drives it: PUT a NAR file, then PUT its narinfo.

A NAR is ingested into castore while it streams in, decompressed on the way; the
sha256 of the bytes received must match the file name (Nix names it by FileHash).
Then its root node, NarSize and NarHash are recorded durably under that name, so
HEAD answers 200 and the narinfo may come later, even after a restart.

A narinfo is accepted only when its NAR was uploaded, NarHash and NarSize agree
with it and every reference (but the path itself) is in the store. The PathInfo,
with the narinfo's signatures, is then written in one put: a rejected narinfo
leaves nothing behind.
"""

from __future__ import annotations

import asyncio

from aiohttp import web

from castore.errors import ValidationError
from castore.url import CAStore
from store import nixbase32
from store.nar import SupportsRead
from store.nar.ingest import ingest_nar
from store.nar.reader import HashingReader
from store.narinfo import NarInfo
from store.pathinfo.model import PathInfo
from nar_bridge.bodies import read_limited
from nar_bridge.bridge import BRIDGE, Bridge, StagedNar, root_exists
from store.compression import decompressing
from nar_bridge.names import NarFile, parse_hash_part
from nar_bridge.threads import BlockingReader

NARINFO_LIMIT = 2 << 20


async def put_nar(request: web.Request) -> web.Response:
    bridge = request.app[BRIDGE]
    nar_file = NarFile.parse(request.match_info["name"])
    body = BlockingReader(request.content, asyncio.get_running_loop())
    staged = await bridge.workers.stream(ingest_upload, bridge.store.castore, body, nar_file)
    await bridge.workers.call(bridge.staged.put, nar_file.name, staged.encode())
    return web.Response(text="uploaded\n")


def ingest_upload(castore: CAStore, body: SupportsRead, nar_file: NarFile) -> StagedNar:
    """Blocking: decompress and ingest one uploaded NAR file; its bytes must hash to its name."""
    raw = HashingReader(body)
    result = ingest_nar(castore, decompressing(raw, nar_file.compression))
    if raw.sha256 != nar_file.file_sha256:
        raise ValidationError(f"the uploaded bytes have sha256 {nixbase32.encode(raw.sha256)}, "
                              f"not the {nixbase32.encode(nar_file.file_sha256)} of their name")
    return StagedNar(result.node, result.nar_size, result.nar_sha256)


async def put_narinfo(request: web.Request) -> web.Response:
    bridge = request.app[BRIDGE]
    digest = parse_hash_part(request.match_info["hash"])
    narinfo = NarInfo.parse(await read_limited(request.content, NARINFO_LIMIT, request.content_length))
    info = await bridge.workers.call(commit_narinfo, bridge, digest, narinfo)
    bridge.recent_narinfos.drop(digest)
    return web.Response(text=f"added {info.store_path}\n")


def commit_narinfo(bridge: Bridge, digest: bytes, narinfo: NarInfo) -> PathInfo:
    """Blocking: check a narinfo against its uploaded NAR and the store, then write the PathInfo."""
    path = narinfo.store_path
    if path.digest != digest:
        raise ValidationError(f"narinfo for {path} was sent to {nixbase32.encode(digest)}.narinfo")
    nar = bridge.find_nar(NarFile.from_url(narinfo.url))
    if nar is None:
        raise ValidationError(f"NAR {narinfo.url} was not uploaded")
    if nar.nar_sha256 != narinfo.nar_hash:
        raise ValidationError(f"NarHash sha256:{nixbase32.encode(narinfo.nar_hash)} differs from the uploaded "
                              f"NAR's sha256:{nixbase32.encode(nar.nar_sha256)}")
    if nar.nar_size != narinfo.nar_size:
        raise ValidationError(f"NarSize {narinfo.nar_size} differs from the uploaded NAR's {nar.nar_size}")
    store = bridge.store
    unknown = [r for r in narinfo.references if r != path and store.pathinfo.get(r.digest) is None]
    if unknown:
        raise ValidationError(f"unknown references: {' '.join(r.basename for r in unknown)}")
    if not root_exists(store.castore, nar.node):
        raise ValidationError(f"the contents of {narinfo.url} are gone from the store; upload it again")
    return store.pathinfo.put(PathInfo(path, nar.node, nar.nar_size, nar.nar_sha256, narinfo.references,
                                       narinfo.signatures, narinfo.deriver, narinfo.ca))

