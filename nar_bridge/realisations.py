"""Realisations of content-addressed derivations' outputs: what `nix copy` of a CA output sends
and a substituting Nix asks for before the output itself.

- `realisations/<sha256:hex>!<output>.doi` (Nix <= 2.34, keyed by the derivation's hash modulo)
- `build-trace-v2/<drv basename>/<output>.doi` (Nix >= 2.35, keyed by the derivation's path)

Both are kept in the store's "realisation" records (store/records/realisations.py), checked
and as sent. Nix uploads a realisation after its output path, so a PUT naming a path this
cache does not have is refused (400); a GET whose path has since gone (deleted, collected)
answers 404, as if the output was never built, rather than point at nothing. With `--sign-key`
a served realisation gets a signature by each key, as narinfos do (`nix copy --from` checks them).
"""

from __future__ import annotations

from typing import Callable

from aiohttp import web

from castore.errors import ValidationError
from store.records.realisations import (NAMESPACE, REALISATION_LIMIT, built_id, check_built, check_hashed,
                                        hashed_id, with_signatures)
from store.records.service import Namespace
from store.storepath import StorePath
from nar_bridge.bodies import read_limited
from nar_bridge.bridge import BRIDGE, Bridge

DOI_SUFFIX = ".doi"
JSON_TYPE = "application/json"
Check = Callable[[bytes], StorePath]


def _hashed(request: web.Request) -> tuple[str, Check]:
    key = hashed_id(_without_suffix(request.match_info["id"]))
    return key, lambda body: check_hashed(key, body)


def _built(request: web.Request) -> tuple[str, Check]:
    return built_id(request.match_info["drv"], _without_suffix(request.match_info["output"])), check_built


def _without_suffix(name: str) -> str:
    if not name.endswith(DOI_SUFFIX):
        raise ValidationError(f"{name[:120]!r} does not end in {DOI_SUFFIX}")
    return name[:-len(DOI_SUFFIX)]


async def get_realisation(request: web.Request) -> web.Response:
    return await _get(request, _hashed)


async def get_build_trace(request: web.Request) -> web.Response:
    return await _get(request, _built)


async def put_realisation(request: web.Request) -> web.Response:
    return await _put(request, _hashed)


async def put_build_trace(request: web.Request) -> web.Response:
    return await _put(request, _built)


async def _get(request: web.Request, parse: Callable[[web.Request], tuple[str, Check]]) -> web.Response:
    bridge = request.app[BRIDGE]
    try:
        key, check = parse(request)
    except ValidationError:
        raise web.HTTPNotFound(text="not a derivation output\n") from None

    def lookup() -> bytes | None:
        value = _records(bridge).get(key)
        if value is None or not _have(bridge, check(value)):
            return None
        keys = bridge.config.sign_keys
        return with_signatures(key, value, keys) if keys else value

    value = await bridge.workers.call(lookup)
    if value is None:
        raise web.HTTPNotFound(text="no realisation of this derivation output\n")
    return web.Response(body=value, content_type=JSON_TYPE)


async def _put(request: web.Request, parse: Callable[[web.Request], tuple[str, Check]]) -> web.Response:
    bridge = request.app[BRIDGE]
    key, check = parse(request)
    body = await read_limited(request.content, REALISATION_LIMIT, request.content_length)
    out_path = check(body)

    def store() -> None:
        if not _have(bridge, out_path):
            raise ValidationError(f"the output {out_path} is not in this cache: upload it first")
        _records(bridge).put(key, body)

    await bridge.workers.call(store)
    return web.Response(text="stored\n")


def _records(bridge: Bridge) -> Namespace:
    return Namespace(bridge.store.records, NAMESPACE)


def _have(bridge: Bridge, path: StorePath) -> bool:
    """Blocking: whether the store has this very path."""
    info = bridge.store.pathinfo.get(path.digest)
    return info is not None and info.store_path == path
