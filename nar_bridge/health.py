"""`GET /healthz`, for load balancers and supervisors: 200 when the store answers, 503 otherwise.

The probe is castore's (CAStore.probe, the daemon's health service asks the same). Path infos
are not asked: a lookup there goes upstream through a read-through cache, and a listing is the
only other question every backend answers; they live with castore (one daemon, one database) in
the deployments the bridge serves. Probes are bounded (castore.probing): a hung store costs one
thread, and each check answers within the deadline.
"""

from __future__ import annotations

from aiohttp import web

from nar_bridge.bridge import BRIDGE


async def get_healthz(request: web.Request) -> web.Response:
    bridge = request.app[BRIDGE]
    try:
        await bridge.workers.call(bridge.probe)
    except TimeoutError:
        return web.Response(status=503, text=f"the store did not answer within {bridge.probe.seconds:.0f} s\n")
    except Exception as e:  # noqa: BLE001 - whatever the store raises, it is not healthy
        return web.Response(status=503, text=f"the store does not answer: {e or type(e).__name__}\n")
    return web.Response(text="ok\n")
