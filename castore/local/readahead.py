"""Items in order, with work for the next few done ahead by a thread pool.

A reader that renders many chunks in order (a NAR, a tree walk) wants the next frames
decompressed while it handles the current one: zstd releases the GIL for the whole of a frame,
so the workers use the other cores, and the bound keeps memory to a few frames. Only the items
that need it are handed to the pool: each handoff wakes a thread and makes the consumer's thread
wait for the GIL when it comes back, which costs more than the work for a frame already decompressed.
Small calls that release the GIL, such as BLAKE3 of one chunk, are left to the consumer for the
same reason: each waits to take the GIL back while another thread runs Python code.
"""

from __future__ import annotations

import collections
import concurrent.futures
from typing import Callable, Iterable, Iterator, TypeVar

T = TypeVar("T")


def prefetching(items: Iterable[T], prefetch: Callable[[T], object], needed: Callable[[T], bool],
                pool: concurrent.futures.Executor, ahead: int) -> Iterator[T]:
    """Each item, in order, once `prefetch(item)` was handed to the pool for the items `needed`
    says want it, as they came within `ahead` items of the consumer. The consumer does not wait for
    a prefetch: it is only a head start (what it fills is what the consumer reads anyway, and its
    errors are the consumer's to meet and report when it reads).

    A consumer that stops early cancels the prefetches no worker has started and waits for the
    others, so no worker still reads once the generator is closed.
    """
    source = iter(items)
    window: collections.deque[T] = collections.deque()
    started: collections.deque[concurrent.futures.Future] = collections.deque()
    try:
        while True:
            while len(window) <= ahead:
                item = next(source, _END)
                if item is _END:
                    break
                window.append(item)  # type: ignore[arg-type]
                if needed(item):  # type: ignore[arg-type]
                    started.append(pool.submit(prefetch, item))
            while started and started[0].done():
                started.popleft()
            if not window:
                return
            yield window.popleft()
    finally:
        for future in started:
            future.cancel()
        concurrent.futures.wait(started)


_END = object()
