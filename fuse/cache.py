"""A bounded LRU cache for the trio side of the mount, filled by worker threads.

Every backend call (LMDB, gRPC, decompression) may block, so a miss runs its fetch in
a worker thread while the event loop keeps serving other requests. Concurrent misses
of one key share a single fetch. Errors are handed to the tasks that waited for that
fetch but never cached: the next request tries the backend again.

Work ahead of demand (`fill`) fetches many items per thread call. A get of an item such
a batch is fetching waits for the batch, but never longer than FILL_PATIENCE: then it
fetches the item itself, so a slow item never holds up readers of the others.

The cache is used from the trio thread only, so it needs no lock.
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Callable, Generic, Hashable, Sequence, TypeVar

import trio

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")
T = TypeVar("T")

FILL_BATCH = 16
"""Items fetched per worker-thread call when filling ahead of demand."""
FILL_PATIENCE = 0.05
"""Seconds a get waits for a batch fetching its item (a batch of small items takes a few ms)."""


class _Pending:
    """A fetch in flight: its waiters learn its end, and its error if it failed."""

    def __init__(self) -> None:
        self.done = trio.Event()
        self.error: Exception | None = None


class AsyncCache(Generic[K, V]):
    """Values up to `capacity` total weight (bytes, entries...), least recently used out first."""

    def __init__(self, capacity: int, weigh: Callable[[V], int]) -> None:
        self._capacity = capacity
        self._weigh = weigh
        self._items: OrderedDict[K, V] = OrderedDict()
        self._weight = 0
        self._pending: dict[K, _Pending] = {}
        self._filling: dict[K, trio.Event] = {}

    def __contains__(self, key: K) -> bool:
        """Cached, or being fetched."""
        return key in self._items or key in self._pending or key in self._filling

    def peek(self, key: K) -> V | None:
        """The cached value, or None: never fetches."""
        return self._items.get(key)

    async def get(self, key: K, fetch: Callable[[], V], limiter: trio.CapacityLimiter) -> V:
        """The cached value, or `fetch()` run in a worker thread under `limiter`."""
        waited_for_fill = False
        while True:
            if key in self._items:
                self._items.move_to_end(key)
                return self._items[key]
            pending = self._pending.get(key)
            if pending is not None:
                await pending.done.wait()
                if pending.error is not None:
                    raise pending.error
                continue  # fetched (or its fetcher was cancelled): look again
            batch = self._filling.get(key)
            if batch is None or waited_for_fill:
                break
            waited_for_fill = True
            with trio.move_on_after(FILL_PATIENCE):
                await batch.wait()
        pending = self._pending[key] = _Pending()
        try:
            value = await trio.to_thread.run_sync(fetch, limiter=limiter)
        except Exception as e:
            pending.error = e
            raise
        finally:
            del self._pending[key]
            pending.done.set()
        self.put(key, value)
        return value

    async def fill(self, items: Sequence[T], key: Callable[[T], K], fetch: Callable[[T], V],
                   limiter: trio.CapacityLimiter) -> None:
        """Fetch ahead of demand the items neither cached nor being fetched, FILL_BATCH per thread call.

        An item whose fetch fails is left out: a later get fetches it again and reports the error.
        """
        for start in range(0, len(items), FILL_BATCH):
            todo = {k: item for item in items[start:start + FILL_BATCH] if (k := key(item)) not in self}
            if not todo:
                continue
            async with limiter:  # claim items only once a thread is ours: gets never wait on a queue
                todo = {k: item for k, item in todo.items() if k not in self}
                if not todo:
                    continue
                done = trio.Event()
                for k in todo:
                    self._filling[k] = done
                try:
                    values = await trio.to_thread.run_sync(_fetch_each, todo, fetch)
                finally:
                    for k in todo:
                        del self._filling[k]
                    done.set()
            for k, value in values.items():
                self.put(k, value)

    def put(self, key: K, value: V) -> None:
        """Keep a value fetched elsewhere (a tree walk hands over what it fetched)."""
        weight = self._weigh(value)
        if key in self._items or weight > self._capacity:
            return  # a get fetched it while a batch did too; or it would evict everything
        self._items[key] = value
        self._weight += weight
        while self._weight > self._capacity:
            _, evicted = self._items.popitem(last=False)
            self._weight -= self._weigh(evicted)


def _fetch_each(todo: dict[K, T], fetch: Callable[[T], V]) -> dict[K, V]:
    """In a worker thread: every item that can be fetched."""
    values = {}
    for k, item in todo.items():
        try:
            values[k] = fetch(item)
        except Exception:
            continue
    return values
