"""The write side, as `nix copy --to http://...` drives it: PUT a NAR file, then PUT its narinfo.

A NAR is ingested into castore while it streams in, decompressed on the way; the
sha256 of the bytes received must match the file name (Nix names it by FileHash).
Then its root node, NarSize and NarHash are recorded durably under that name, so
HEAD answers 200 and the narinfo may come later, even after a restart.

A narinfo is accepted only when its NAR was uploaded, the verified ingest's checks
pass (FileHash is the file's name, NarHash and NarSize agree with what was measured)
and every reference (but the path itself) is in the store. The PathInfo, with every
narinfo field, is then written in one put: a rejected narinfo leaves nothing behind.
"""

from __future__ import annotations

import asyncio

from aiohttp import web

from castore.errors import ValidationError
from castore.url import CAStore
from store import nixbase32
from store.nar import SupportsRead
from store.narinfo import NarInfo
from store.nixhash import HashAlgo, NixHash
from store.pathinfo.model import PathInfo
from store.records.staged import StagedNar
from store.verified_ingest import NarFacts, check_narinfo, ingest_nar_file, path_info
from nar_bridge.bodies import read_limited
from nar_bridge.bridge import BRIDGE, Bridge, root_exists
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
    node, facts = ingest_nar_file(castore, body, nar_file.compression, lambda facts: _check_name(nar_file, facts))
    assert facts.file_size is not None  # ingest_nar_file measures it
    return StagedNar(node, facts.nar_size, facts.nar_sha256, facts.file_size)


def _check_name(nar_file: NarFile, facts: NarFacts) -> None:
    assert facts.file_hash is not None  # ingest_nar_file measures it
    if facts.file_hash.digest != nar_file.file_sha256:
        raise ValidationError(f"the uploaded bytes have sha256 {nixbase32.encode(facts.file_hash.digest)}, "
                              f"not the {nixbase32.encode(nar_file.file_sha256)} of their name")


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
    nar_file = NarFile.from_url(narinfo.url)
    nar = bridge.find_nar(nar_file)
    if nar is None:
        raise ValidationError(f"NAR {narinfo.url} was not uploaded")
    uploaded = NixHash(HashAlgo.SHA256, nar_file.file_sha256)  # an upload's FileHash is its name
    check_narinfo(narinfo, NarFacts(nar.nar_size, nar.nar_sha256, uploaded, nar.file_size))
    store = bridge.store
    unknown = [r for r in narinfo.references if r != path and store.pathinfo.get(r.digest) is None]
    if unknown:
        raise ValidationError(f"unknown references: {' '.join(r.basename for r in unknown)}")
    if not root_exists(store.castore, nar.node):
        raise ValidationError(f"the contents of {narinfo.url} are gone from the store; upload it again")
    return store.pathinfo.put(path_info(narinfo, nar.node))
