"""Build logs: `GET|PUT log/<drv basename>`, what `nix log --store` and `nix store copy-log` use.

Logs are kept as the bridge's records (beside a local store, or in memory), as sent.
"""

from __future__ import annotations

from aiohttp import web

from castore.errors import ValidationError
from store.pathinfo.model import DRV_SUFFIX
from store.storepath import StorePath
from nar_bridge.bodies import read_limited
from nar_bridge.bridge import BRIDGE

LOG_LIMIT = 64 << 20
LOG_TYPE = "text/plain"


def _drv_name(request: web.Request) -> str:
    name = request.match_info["drv"]
    if not StorePath.from_basename(name).name.endswith(DRV_SUFFIX):
        raise ValidationError(f"{name[:120]!r} is not a derivation")
    return name


async def get_log(request: web.Request) -> web.Response:
    bridge = request.app[BRIDGE]
    try:
        name = _drv_name(request)
    except ValidationError:
        raise web.HTTPNotFound(text="not a derivation\n") from None
    log = await bridge.workers.call(bridge.logs.get, name)
    if log is None:
        raise web.HTTPNotFound(text="no log for this derivation\n")
    return web.Response(body=log, content_type=LOG_TYPE, charset="utf-8")


async def put_log(request: web.Request) -> web.Response:
    bridge = request.app[BRIDGE]
    name = _drv_name(request)
    body = await read_limited(request.content, LOG_LIMIT, request.content_length)
    await bridge.workers.call(bridge.logs.put, name, body)
    return web.Response(text="stored\n")
