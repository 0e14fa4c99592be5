"""pyfuse3's request loop on trio, made cheaper per request for a reader that waits for each answer.

Most requests are answered from memory in a few microseconds; what a request costs then
is the loop around it. Two things make that loop dearer than it needs to be:

- pyfuse3's worker tasks take turns at /dev/fuse under a lock: the holder waits for a
  request, lets go and handles it, and letting go wakes the next waiting task, which
  costs a pass of trio's scheduler for every request. Here the lock is handed over
  lazily: letting go wakes nobody and a task finding it free takes it at once; a waiting
  task is woken only if the lock is still free when a task step ends, that is when the
  task handling a request had to wait (for a worker thread, say). Then another task reads
  requests meanwhile, as with pyfuse3's own lock.
- A reader such as `nix hash path` sends its next request a few microseconds after our
  answer, but waiting for it in epoll puts this CPU to sleep, and waking it costs far more
  (tens of microseconds in a VM). So the task polls /dev/fuse for up to SPIN_SECONDS
  before it sleeps; and at least every YIELD_SECONDS it waits through trio anyway, so
  other tasks and finished worker threads get their turn.

pyfuse3 finds trio as its module attribute `trio` (pyfuse3.asyncio swaps it the same
way); `main` lends it trio with these two parts replaced while the loop runs.
"""

from __future__ import annotations

import select
import time
import types
from typing import Any

import pyfuse3
import trio

SPIN_SECONDS = 50e-6
"""How long to poll for the next request before sleeping: a reader's turnaround, with room."""
YIELD_SECONDS = 1e-3
"""Longest stretch of requests handled without a pass of trio's scheduler."""


class _LazyLock:
    """A lock whose release wakes no one; _Waker wakes a waiter if the lock stays free."""

    def __init__(self) -> None:
        self.held = False
        self.waiters = trio.lowlevel.ParkingLot()

    async def __aenter__(self) -> None:
        while self.held:
            await self.waiters.park()
        self.held = True

    async def __aexit__(self, *exc_info: object) -> None:
        self.held = False


class _Waker(trio.abc.Instrument):
    """After every task step: a lock left free with tasks waiting wakes one of them."""

    def __init__(self) -> None:
        self.locks: list[_LazyLock] = []

    def new_lock(self) -> _LazyLock:
        lock = _LazyLock()
        self.locks.append(lock)
        return lock

    def after_task_step(self, task: trio.lowlevel.Task) -> None:
        for lock in self.locks:
            if not lock.held and lock.waiters:
                lock.waiters.unpark()


class _Spinner:
    """trio.lowlevel.wait_readable, polling for SPIN_SECONDS before it sleeps."""

    def __init__(self) -> None:
        self._poll = select.poll()
        self._fd = -1
        self._slept = time.perf_counter()

    async def wait_readable(self, fd: int) -> None:
        if fd != self._fd:
            self._poll.register(fd, select.POLLIN)
            self._fd = fd
        if time.perf_counter() - self._slept < YIELD_SECONDS and self._readable_within(SPIN_SECONDS):
            return
        await trio.lowlevel.wait_readable(fd)
        self._slept = time.perf_counter()

    def _readable_within(self, seconds: float) -> bool:
        until = time.perf_counter() + seconds
        while not self._poll.poll(0):
            if time.perf_counter() > until:
                return False
        return True


class _Delegate(types.ModuleType):
    """A module that is `real` but for the attributes set on it."""

    def __init__(self, real: types.ModuleType) -> None:
        super().__init__(real.__name__)
        self._real = real

    def __getattr__(self, name: str) -> Any:
        return getattr(self._real, name)


async def main() -> None:
    """pyfuse3.main() with the lazy lock and the polling wait (see the module's docstring)."""
    waker = _Waker()
    lowlevel = _Delegate(trio.lowlevel)
    lowlevel.wait_readable = _Spinner().wait_readable
    lent = _Delegate(trio)
    lent.Lock = waker.new_lock
    lent.lowlevel = lowlevel
    trio.lowlevel.add_instrument(waker)
    pyfuse3.trio = lent  # type: ignore[attr-defined]
    try:
        await pyfuse3.main()
    finally:
        pyfuse3.trio = trio  # type: ignore[attr-defined]
        trio.lowlevel.remove_instrument(waker)
