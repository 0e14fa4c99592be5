"""A bounded LRU cache for the trio side of the mount, filled by worker threads.

Every backend call (LMDB, gRPC, decompression) may block, so a miss runs its fetch in
a worker thread while the event loop keeps serving other requests. Concurrent misses
of one key share a single fetch. Errors are handed to the tasks that waited for that
fetch but never cached: the next request tries the backend again.

Work ahead of demand (`fill`) fetches many items in one thread call, so a backend can
read ahead within them (decompress the next frames in threads of its own), and hands each
to the cache as it comes. A get of an item being filled waits for that item, but never
longer than FILL_PATIENCE: then it fetches the item itself, so a slow item never holds up
its readers.

The cache is used from the trio thread only, so it needs no lock.
"""

from __future__ import annotations

import logging
from collections import OrderedDict
from typing import Callable, Generator, Generic, Hashable, Sequence, TypeVar

import trio

log = logging.getLogger(__name__)

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")
T = TypeVar("T")

FILL_PATIENCE = 0.05
"""Seconds a get waits for a fill to bring its item (the fill fetches it within a few ms)."""


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

    def get_cached(self, key: K) -> V | None:
        """The cached value, now the most recently used, or None: never fetches or waits."""
        value = self._items.get(key)
        if value is not None:
            self._items.move_to_end(key)
        return value

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
            filling = self._filling.get(key)
            if filling is None or waited_for_fill:
                break
            waited_for_fill = True
            with trio.move_on_after(FILL_PATIENCE):
                await filling.wait()
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

    async def fill(self, items: Sequence[T], key: Callable[[T], K],
                   fetch: Callable[[list[T]], Generator[V | None, None, None]], limiter: trio.CapacityLimiter) -> None:
        """Fetch ahead of demand the items neither cached nor being fetched, in one worker-thread call:
        `fetch(items)` yields their values in order, None for one it could not fetch.

        An item that fails is left out: a later get fetches it again and reports the error.
        """
        async with limiter:  # claim items only once a thread is ours: gets never wait on a queue
            todo = {k: item for item in items if (k := key(item)) not in self}
            if not todo:
                return
            for k in todo:
                self._filling[k] = trio.Event()
            token = trio.lowlevel.current_trio_token()
            try:
                await trio.to_thread.run_sync(self._fetch_into, todo, fetch, token)
            finally:
                for k in todo:
                    self._arrived(k, None)  # the items that never came

    def _fetch_into(self, todo: dict[K, T], fetch: Callable[[list[T]], Generator[V | None, None, None]],
                    token: trio.lowlevel.TrioToken) -> None:
        """In a worker thread: hand each value to the trio thread as soon as it is fetched, without
        waiting for the trio thread to take it."""
        values = fetch(list(todo.values()))
        try:
            for k, value in zip(todo, values):
                token.run_sync_soon(self._arrived, k, value)
        except Exception as e:  # the rest stays unfetched; gets fetch it and report the error
            log.debug("filling the cache failed: %s", e)
        finally:
            values.close()  # a backend reading ahead stops now, not when this is collected

    def _arrived(self, key: K, value: V | None) -> None:
        """In the trio thread: keep a filled value, and wake whoever waits for it."""
        done = self._filling.pop(key, None)
        if value is not None:
            self.put(key, value)
        if done is not None:
            done.set()

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
