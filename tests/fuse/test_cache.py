"""The mount's cache: shared fetches in worker threads, bounded weight, no waiting behind slow items."""

from __future__ import annotations

import threading
import time
from typing import Callable, Generator

import pytest
import trio

from fuse.cache import FILL_PATIENCE, AsyncCache


def each(fetch: Callable[[str], bytes]) -> Callable[[list[str]], Generator[bytes | None, None, None]]:
    """A fill's fetch that fetches the items one by one, None for one that fails."""
    def fetch_all(items: list[str]) -> Generator[bytes | None, None, None]:
        for item in items:
            try:
                yield fetch(item)
            except LookupError:
                yield None
    return fetch_all


def test_concurrent_misses_share_one_fetch_and_hits_need_none() -> None:
    calls = []

    def fetch() -> bytes:
        calls.append(threading.current_thread().name)
        time.sleep(0.05)
        return b"value"

    async def main() -> None:
        cache: AsyncCache[str, bytes] = AsyncCache(100, len)
        limiter = trio.CapacityLimiter(4)
        results = []

        async def get() -> None:
            results.append(await cache.get("k", fetch, limiter))

        async with trio.open_nursery() as nursery:
            for _ in range(5):
                nursery.start_soon(get)
        assert results == [b"value"] * 5
        assert await cache.get("k", fetch, limiter) == b"value"
        assert len(calls) == 1 and calls[0] != threading.current_thread().name

    trio.run(main)


def test_errors_reach_every_waiter_but_are_not_cached() -> None:
    attempts = []

    def failing() -> bytes:
        attempts.append(1)
        time.sleep(0.02)
        raise LookupError("gone")

    async def main() -> None:
        cache: AsyncCache[str, bytes] = AsyncCache(100, len)
        limiter = trio.CapacityLimiter(4)
        failures = []

        async def get() -> None:
            try:
                await cache.get("k", failing, limiter)
            except LookupError as e:
                failures.append(e)

        async with trio.open_nursery() as nursery:
            for _ in range(3):
                nursery.start_soon(get)
        assert len(failures) == 3 and len(attempts) == 1
        assert await cache.get("k", lambda: b"back", limiter) == b"back"

    trio.run(main)


def test_the_least_recently_used_go_first_once_the_weight_is_exceeded() -> None:
    async def main() -> None:
        cache: AsyncCache[str, bytes] = AsyncCache(10, len)
        limiter = trio.CapacityLimiter(1)
        for key in "abc":
            await cache.get(key, lambda: b"1234", limiter)  # a, b, then c evicts a
        assert "a" not in cache and "b" in cache and "c" in cache
        await cache.get("big", lambda: b"x" * 11, limiter)  # heavier than the cache: returned, not kept
        assert "big" not in cache and "b" in cache

    trio.run(main)


def test_a_slow_item_in_a_batch_does_not_hold_up_the_others() -> None:
    def fetch(item: str) -> bytes:
        if item == "slow":
            time.sleep(2)
        return item.encode()

    async def main() -> None:
        cache: AsyncCache[str, bytes] = AsyncCache(100, len)
        limiter = trio.CapacityLimiter(4)
        async with trio.open_nursery() as nursery:
            nursery.start_soon(cache.fill, ["slow", "quick"], lambda i: i, each(fetch), trio.CapacityLimiter(1))
            await trio.sleep(0.01)
            assert "quick" in cache  # being fetched by the batch
            with trio.fail_after(FILL_PATIENCE + 1):
                assert await cache.get("quick", lambda: fetch("quick"), limiter) == b"quick"
        assert "slow" in cache

    trio.run(main)


def test_a_filled_item_is_kept_before_the_fill_ends() -> None:
    def fetch(item: str) -> bytes:
        if item == "slow":
            time.sleep(2)
        return item.encode()

    async def main() -> None:
        cache: AsyncCache[str, bytes] = AsyncCache(100, len)
        async with trio.open_nursery() as nursery:
            nursery.start_soon(cache.fill, ["quick", "slow"], lambda i: i, each(fetch), trio.CapacityLimiter(1))
            with trio.fail_after(1):
                while cache.peek("quick") is None:
                    await trio.sleep(0.01)
            assert cache.peek("slow") is None and "slow" in cache  # still being fetched
        assert cache.peek("slow") == b"slow"

    trio.run(main)


@pytest.mark.parametrize("items", [["a", "b"], ["a", "gone"]])
def test_a_batch_fills_what_it_can(items: list[str]) -> None:
    def fetch(item: str) -> bytes:
        if item == "gone":
            raise LookupError(item)
        return item.encode()

    async def main() -> None:
        cache: AsyncCache[str, bytes] = AsyncCache(100, len)
        await cache.fill(items, lambda i: i, each(fetch), trio.CapacityLimiter(1))
        assert "a" in cache and "gone" not in cache

    trio.run(main)
