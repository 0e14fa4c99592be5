"""Items in order, with the work their keys need done ahead by worker threads (workers.py).

A reader that renders many chunks in order (a NAR, a tree walk) wants the next frames
decompressed while it handles the current one: zstd releases the GIL for the whole of a frame,
so the workers use the other cores, and the bound keeps memory to a few frames. The window counts
keys (frames), not items: many runs of chunks share a frame, and a window of runs kept every
worker on the frame the consumer was reading, so the next one started only when it was reached
(numpy-2.1.2's 20 frames were decompressed one after the other).

Only the keys that need it are handed to the pool: each handoff wakes a thread and makes the
consumer's thread wait for the GIL when it comes back, which costs more than the work for a frame
already decompressed. Small calls that release the GIL, such as BLAKE3 of one chunk, are left to
the consumer for the same reason: each waits to take the GIL back while another thread runs
Python code.
"""

from __future__ import annotations

import collections
from typing import Callable, Hashable, Iterable, Iterator, TypeVar

from castore.local.workers import Task, Workers

T = TypeVar("T")
K = TypeVar("K", bound=Hashable)


def prefetching(items: Iterable[T], keys: Callable[[T], Iterable[K]], prefetch: Callable[[K], object],
                needed: Callable[[K], bool], pool: Workers, ahead: int,
                most: int) -> Iterator[T]:
    """Each item, in order, once `prefetch(key)` was handed to the pool for the keys it needs:
    each key once, when an item needing it first comes into the window and `needed` says it wants
    one. The window reaches as far as it takes to have `ahead` prefetches started for items not yet
    yielded, or holds `most` items. The consumer does not wait for a prefetch: it is only a head
    start (what it fills is what the consumer reads anyway, and its errors are the consumer's to
    meet and report when it reads).

    A consumer that stops early cancels the prefetches no worker has started and waits for the
    others, so no worker still reads once the generator is closed.
    """
    source = iter(items)
    window: collections.deque[tuple[T, int]] = collections.deque()  # each item, and the prefetches it started
    started: collections.deque[Task[K]] = collections.deque()
    seen: set[K] = set()
    ahead_now = 0  # prefetches started by the items in the window
    try:
        while True:
            while (ahead_now < ahead and len(window) < most) or not window:
                item = next(source, _END)
                if item is _END:
                    break
                count = 0
                for key in keys(item):  # type: ignore[arg-type]
                    if key not in seen:
                        seen.add(key)
                        if needed(key):
                            started.append(pool.submit(prefetch, key))
                            count += 1
                window.append((item, count))  # type: ignore[arg-type]
                ahead_now += count
            while started and started[0].done():
                started.popleft()
            if not window:
                return
            item, count = window.popleft()
            ahead_now -= count
            yield item
    finally:
        for task in started:
            task.cancel()
        for task in started:
            task.wait()


_END = object()
