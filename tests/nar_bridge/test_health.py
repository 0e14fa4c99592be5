"""`GET /healthz` follows the store: a bridge over a `cairn daemon` answers 503 while the daemon is
stopped and 200 again once it is back."""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

from tests.nar_bridge.conftest import Bridge
from tests.services.daemon import Daemon

RECONNECT_SECONDS = 60.0
"""gRPC reconnects with a backoff after the daemon comes back: poll for at most this long."""


def wait_for_health(bridge: Bridge, status: int) -> bytes:
    deadline = time.monotonic() + RECONNECT_SECONDS
    while (reply := bridge.get("/healthz")).status != status:
        assert time.monotonic() < deadline, f"/healthz still {reply.status}: {reply.body!r}"
        time.sleep(0.1)
    return reply.body


def test_healthz_is_503_while_the_store_is_down_and_200_when_it_is_back(start_bridge, tmp_path: Path):
    with tempfile.TemporaryDirectory(prefix="cairn-", dir="/tmp") as short:  # unix socket paths are short
        daemon = Daemon(f"local://{tmp_path}/store", Path(short) / "d.sock").start()
        try:
            bridge = start_bridge(daemon.url, "--state-dir", str(tmp_path / "state"))
            reply = bridge.get("/healthz")
            assert (reply.status, reply.body) == (200, b"ok\n")

            daemon.stop()
            assert b"the store does not answer" in wait_for_health(bridge, 503)
            daemon.start()
            wait_for_health(bridge, 200)
            assert "Traceback" not in bridge.log_text()
        finally:
            daemon.stop()
