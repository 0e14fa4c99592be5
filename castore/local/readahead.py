"""Results of tasks in order, computed by a thread pool a bounded amount of work ahead.

A reader that renders many chunks in order (a NAR, a tree walk) wants the next frames
decompressed while it handles the current one: zstd and BLAKE3 release the GIL, so two
workers keep both cores busy, and the bound keeps memory to a few frames.
"""

from __future__ import annotations

import collections
import concurrent.futures
import itertools
from typing import Callable, Iterable, Iterator, TypeVar

T = TypeVar("T")


def in_order(tasks: Iterator[tuple[Callable[[], T], bool]], pool: concurrent.futures.Executor,
             frames: int, most: int) -> Iterator[T]:
    """Each task's result, in order. Tasks come with whether they open a frame; each is
    submitted as soon as fewer than `frames` frame-opening tasks and fewer than `most` tasks
    are unconsumed, so the many tasks sharing a frame never hold back the next frame.

    `tasks` is taken from as tasks are submitted: whoever produces it (laying out a NAR) works
    while the pool decompresses. A consumer that stops early cancels what has not started and
    waits for what has, so no worker still reads once the generator is closed.
    """
    pending: collections.deque[tuple[concurrent.futures.Future[T], bool]] = collections.deque()
    opened = 0
    try:
        while True:
            while opened < frames and len(pending) < most:
                task = next(tasks, None)
                if task is None:
                    break
                pending.append((pool.submit(task[0]), task[1]))
                opened += task[1]
            if not pending:
                return
            done, opens = pending.popleft()
            opened -= opens
            yield done.result()
    finally:
        for future, _ in pending:
            future.cancel()
        concurrent.futures.wait([future for future, _ in pending])


def batched(items: Iterable[T], size: int) -> Iterator[list[T]]:
    """Lists of up to `size` items, taken from `items` only as each list is asked for
    (itertools.batched, which arrives in Python 3.12)."""
    it = iter(items)
    while batch := list(itertools.islice(it, size)):
        yield batch
