"""`GET /healthz`, for load balancers and supervisors: 200 when the store answers, 503 otherwise.

The probe is castore's (CAStore.probe, the daemon's health service asks the same). Path infos
are not asked: a lookup there goes upstream through a read-through cache, and a listing is the
only other question every backend answers; they live with castore (one daemon, one database) in
the deployments the bridge serves.
"""

from __future__ import annotations

import asyncio

from aiohttp import web

from nar_bridge.bridge import BRIDGE

PROBE_SECONDS = 5.0
"""A store that takes longer than this to answer is as good as down."""


async def get_healthz(request: web.Request) -> web.Response:
    bridge = request.app[BRIDGE]
    try:
        await asyncio.wait_for(bridge.workers.call(bridge.store.castore.probe), PROBE_SECONDS)
    except TimeoutError:
        return web.Response(status=503, text=f"the store did not answer within {PROBE_SECONDS:.0f} s\n")
    except Exception as e:  # noqa: BLE001 - whatever the store raises, it is not healthy
        return web.Response(status=503, text=f"the store does not answer: {e or type(e).__name__}\n")
    return web.Response(text="ok\n")
