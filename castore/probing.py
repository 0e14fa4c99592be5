"""Health probes that a hung store cannot pile up: one probe runs at a time, in a thread of its
own, and every health check waits for it at most a deadline.

Load balancers keep asking while a store hangs (a stuck database, an unreachable object store).
A probe per check would each hold a worker (the bridge's, the gRPC server's) until the store
came back, so a hang would starve the service of the threads that serve everything else. Here
a hang costs one thread however many checks arrive, and each check answers in time.
"""

from __future__ import annotations

import threading
from concurrent.futures import Future
from typing import Callable

PROBE_SECONDS = 5.0
"""A store that takes longer than this to answer is as good as down."""


class BoundedProbe:
    def __init__(self, probe: Callable[[], object], seconds: float = PROBE_SECONDS) -> None:
        self._probe = probe
        self.seconds = seconds
        self._lock = threading.Lock()
        self._running: Future[None] | None = None

    def __call__(self) -> None:
        """Blocking: returns when the store answered; raises the probe's error, or TimeoutError
        when the probe under way (this check's or an earlier one's) has not answered in time."""
        with self._lock:
            future = self._running
            if future is None or future.done():
                future = self._running = Future()
                threading.Thread(target=self._run, args=(future,), name="cairn-probe", daemon=True).start()
        future.result(timeout=self.seconds)

    def _run(self, future: Future[None]) -> None:
        try:
            self._probe()
        except BaseException as e:  # noqa: BLE001 - handed to every check waiting on it
            future.set_exception(e)
        else:
            future.set_result(None)
