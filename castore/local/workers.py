"""A few daemon threads that run one-argument calls handed to them: the read-ahead's frame
decompression and the frame writer's compression.

Not concurrent.futures.ThreadPoolExecutor: importing concurrent.futures loads logging (with
string, traceback, weakref...): 4.7 ms of wall time, measured (`python -c "import argparse, typing,
threading"` with and without it), of a `cairn dump` of Django that takes 70-80 ms in all, while the
read-ahead needs only a queue (the C `_queue.SimpleQueue`), threads, and per call: done, cancel,
wait. Errors are not kept: a prefetch's failure is met again by whoever reads what it would have
filled, and the frame writer records its own.
"""

from __future__ import annotations

import threading
from _queue import SimpleQueue  # queue.SimpleQueue itself: the queue module adds heapq, 0.4 ms more
from typing import Callable, Generic, TypeVar

A = TypeVar("A")

_PENDING, _RUNNING, _FINISHED, _CANCELLED = range(4)


class Task(Generic[A]):
    """One call, run once by a worker unless cancelled before one takes it."""

    __slots__ = ("_fn", "_arg", "_state", "_lock", "_over")

    def __init__(self, fn: Callable[[A], object], arg: A) -> None:
        self._fn = fn
        self._arg = arg
        self._state = _PENDING
        self._lock = threading.Lock()  # guards the moves out of _PENDING: a run and a cancel race
        self._over = threading.Lock()  # held until the task is finished or cancelled
        self._over.acquire()

    def run(self) -> None:
        """Call it, unless it was cancelled; what it raises is dropped (see the module's docstring)."""
        with self._lock:
            if self._state != _PENDING:
                return
            self._state = _RUNNING
        try:
            self._fn(self._arg)
        except BaseException:  # a worker outlives any one call
            pass
        finally:
            self._state = _FINISHED
            self._over.release()

    def cancel(self) -> bool:
        """Whether it will not run (a running or finished one cannot be cancelled)."""
        with self._lock:
            if self._state == _PENDING:
                self._state = _CANCELLED
                self._over.release()
        return self._state == _CANCELLED

    def done(self) -> bool:
        return self._state >= _FINISHED

    def wait(self) -> None:
        """Return once it has finished or was cancelled."""
        with self._over:
            pass


class Workers:
    """Up to `count` daemon threads, started as calls come, that run tasks in the order submitted."""

    def __init__(self, count: int, name: str) -> None:
        self._count = count
        self._name = name
        self._queue: SimpleQueue[Task | None] = SimpleQueue()
        self._threads: list[threading.Thread] = []
        self._lock = threading.Lock()
        self._closed = False

    def submit(self, fn: Callable[[A], object], arg: A) -> Task[A]:
        task = Task(fn, arg)
        with self._lock:
            if self._closed:
                raise RuntimeError("the workers are closed")
            if len(self._threads) < self._count:
                thread = threading.Thread(target=self._work, name=f"{self._name}-{len(self._threads)}", daemon=True)
                thread.start()
                self._threads.append(thread)
            self._queue.put(task)
        return task

    def close(self) -> None:
        """Run the tasks already submitted, then stop and join every thread."""
        with self._lock:
            self._closed = True
            threads, self._threads = self._threads, []
            for _ in threads:
                self._queue.put(None)
        for thread in threads:
            thread.join()

    def _work(self) -> None:
        while (task := self._queue.get()) is not None:
            task.run()
