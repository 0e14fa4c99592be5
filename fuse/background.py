"""Best-effort work ahead of demand (read-ahead, tree walks), in the mount's nursery.

Bounded twice: at most TASKS tasks wait or run (more requests are dropped, since demand
reads fetch what they need anyway), and they share THREADS worker threads of their own,
so work nobody waits for never takes the threads of requests somebody is waiting for.
Failures are only logged: the request that needs the data reports its own error.
"""

from __future__ import annotations

import logging
from typing import Any, Awaitable, Callable

import trio

log = logging.getLogger(__name__)

TASKS = 8
THREADS = 2


class Background:
    def __init__(self, nursery: trio.Nursery) -> None:
        self._nursery = nursery
        self.limiter = trio.CapacityLimiter(THREADS)
        self._tasks = 0

    def start(self, work: Callable[..., Awaitable[Any]], *args: Any) -> bool:
        """Run `work(*args)` unless enough is under way already; whether it was started."""
        if self._tasks >= TASKS:
            return False
        self._tasks += 1
        self._nursery.start_soon(self._run, work, args)
        return True

    async def _run(self, work: Callable[..., Awaitable[Any]], args: tuple[Any, ...]) -> None:
        try:
            await work(*args)
        except Exception as e:
            log.debug("background %s failed: %s", getattr(work, "__name__", work), e)
        finally:
            self._tasks -= 1
