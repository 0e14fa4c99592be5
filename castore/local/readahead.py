"""Results of tasks in order, computed by a thread pool a bounded number of tasks ahead.

A reader that renders many chunks in order (a NAR, a tree walk) wants the next frames
decompressed while it handles the current one: zstd releases the GIL for the whole of a frame,
so the workers use the other cores, and the bound keeps memory to a few frames. (Small calls
that release the GIL, such as BLAKE3 of one chunk, are better left to the consumer: each waits
to take the GIL back while another thread runs Python code.)
"""

from __future__ import annotations

import collections
import concurrent.futures
import itertools
from typing import Callable, Iterator, TypeVar

T = TypeVar("T")


def in_order(tasks: Iterator[Callable[[], T]], pool: concurrent.futures.Executor, ahead: int) -> Iterator[T]:
    """Each task's result, in order; up to `ahead` tasks run before the consumer asks for them.
    A task no worker has started when its turn comes runs in the consumer's thread: with many
    consumers on one small pool (a bridge's concurrent streams), each would otherwise wait in
    the queue behind the others' tasks while its own thread idles.

    A consumer that stops early cancels what has not started and waits for what has, so
    no worker still reads once the generator is closed.
    """
    pending = collections.deque((task, pool.submit(task)) for task in itertools.islice(tasks, ahead))
    try:
        while pending:
            task, done = pending.popleft()
            following = next(tasks, None)
            if following is not None:
                pending.append((following, pool.submit(following)))
            yield task() if done.cancel() else done.result()
    finally:
        for _, future in pending:
            future.cancel()
        concurrent.futures.wait([future for _, future in pending])
