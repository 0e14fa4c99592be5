"""The aiohttp application: routes, the one place errors become status codes, and `run` for the CLI.

| route                                   | methods        | module    |
|-----------------------------------------|----------------|-----------|
| /nix-cache-info                         | GET HEAD       | narinfo   |
| /<hash>.narinfo                         | GET HEAD PUT   | narinfo, upload |
| /<hash>.ls                              | GET HEAD       | narinfo   |
| /nar/<FileHash>.nar[.xz,.zst,.bz2,.br]  | GET HEAD PUT   | nar, upload |
| /nar/tvix-castore/<node>?narsize=N      | GET HEAD       | nar       |
| /nar/snix-castore/<node>?narsize=N      | GET HEAD       | nar       |
| /log/<drv>                              | GET HEAD PUT   | logs      |
| /realisations/<sha256:hex>!<out>.doi    | GET HEAD PUT   | realisations |
| /build-trace-v2/<drv>/<out>.doi         | GET HEAD PUT   | realisations |
| /healthz                                | GET HEAD       | health    |
| /metrics (unless --no-metrics)          | GET HEAD       | metrics   |
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Sequence

from aiohttp import web

from castore.durations import STALL_TIMEOUT
from castore.errors import BackendError, CastoreError, CorruptionError, NotFoundError, ValidationError
from castore.hostport import parse_host_port
from store.url import Store
from nar_bridge.access import ACCESS, Access, Handler, expect_handler, guarded
from nar_bridge.accesslog import ACCESS_LOGGER, request_log
from nar_bridge.bodies import BodyTooLarge
from nar_bridge.bridge import BRIDGE, Bridge, BridgeConfig
from nar_bridge.health import get_healthz
from nar_bridge.logs import get_log, put_log
from nar_bridge.metrics import METRICS, BridgeMetrics, get_metrics
from nar_bridge.nar_cache import NAR_CACHE_BYTES
from nar_bridge.nar import get_castore_nar, get_nar_file
from nar_bridge.narinfo import get_cache_info, get_listing, get_narinfo
from nar_bridge.realisations import get_build_trace, get_realisation, put_build_trace, put_realisation
from nar_bridge.upload import put_nar, put_narinfo

log = logging.getLogger(__name__)

SHUTDOWN_GRACE = 5.0


def make_app(bridge: Bridge, *, metrics: bool = True) -> web.Application:
    """The application serving `bridge`; its cleanup closes the bridge (and so the store).
    With `metrics`, `/metrics` tells what the access log (`accesslog`) counted."""
    app = web.Application(middlewares=[_errors])
    app[BRIDGE] = bridge
    app[ACCESS] = Access(bridge.config.read_only, bridge.config.token)
    routes = app.router
    routes.add_get("/nix-cache-info", get_cache_info)
    routes.add_get("/{hash}.narinfo", get_narinfo)
    routes.add_get("/{hash}.ls", get_listing)
    routes.add_get("/nar/{prefix:(?:tvix|snix)-castore}/{node}", get_castore_nar)
    routes.add_get("/nar/{name}", get_nar_file)
    routes.add_get("/log/{drv}", get_log)
    routes.add_get("/realisations/{id}", get_realisation)
    routes.add_get("/build-trace-v2/{drv}/{output}", get_build_trace)
    routes.add_get("/healthz", get_healthz)
    if metrics:
        app[METRICS] = BridgeMetrics(bridge)
        routes.add_get("/metrics", get_metrics)
    for path, handler in (("/{hash}.narinfo", put_narinfo), ("/nar/{name}", put_nar), ("/log/{drv}", put_log),
                          ("/realisations/{id}", put_realisation),
                          ("/build-trace-v2/{drv}/{output}", put_build_trace)):
        routes.add_put(path, guarded(handler), expect_handler=expect_handler)
    app.on_cleanup.append(lambda _: bridge.close())
    return app


_STATUS = ((BodyTooLarge, 413), (NotFoundError, 404), (ValidationError, 400), (TimeoutError, 408),
           (BackendError, 503), (CorruptionError, 500))


@web.middleware
async def _errors(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Typed errors to status codes: the client's mistakes are 4xx, the store's troubles 5xx."""
    try:
        return await handler(request)
    except (CastoreError, TimeoutError) as e:
        status = next(code for kind, code in _STATUS if isinstance(e, kind))
        (log.error if status >= 500 else log.debug)("%s %s: %d %s", request.method, request.path, status, e)
        return web.Response(status=status, text=f"{e}\n")


def load_config(*, priority: int, read_only: bool, token_file: str | None,
                sign_key_files: Sequence[str] = (), nar_cache: str | None = None,
                nar_cache_mib: int | None = None, stall_timeout: float = STALL_TIMEOUT) -> BridgeConfig:
    """The bridge's settings from the command line, each validated."""
    from store.composition import load_secret_keys

    if nar_cache_mib is not None and nar_cache_mib < 1:
        raise ValidationError(f"--nar-cache-mib wants a positive number, got {nar_cache_mib}")
    token = None
    if token_file is not None:
        token = Path(token_file).read_text().strip()
        if not token:
            raise ValidationError(f"token file {token_file} is empty")
    cache_bytes = NAR_CACHE_BYTES if nar_cache_mib is None else nar_cache_mib << 20
    return BridgeConfig(priority, read_only, token, load_secret_keys(list(sign_key_files)),
                        None if nar_cache is None else Path(nar_cache), cache_bytes, stall_timeout)


def run(listen: str, store: Store, config: BridgeConfig, *, metrics: bool = True) -> int:
    """Serve `store` until SIGINT or SIGTERM, then finish (or after a grace period cancel) open requests."""
    host, port = parse_host_port(listen, "--listen")
    app = make_app(Bridge(store, config), metrics=metrics)
    web.run_app(app, host=host, port=port, shutdown_timeout=SHUTDOWN_GRACE,
                access_log_class=request_log(app.get(METRICS)), access_log=ACCESS_LOGGER,
                print=lambda _: log.info("nar-bridge serving on http://%s:%d", host, port))
    return 0
