"""readahead.prefetching: items in order, each key prefetched once, only the keys that need it and
only within the window, the consumer never waiting for one, none left running once it stops."""

from __future__ import annotations

import contextlib
import threading
from typing import Callable, Iterator

from castore.local.readahead import prefetching
from castore.local.workers import Task, Workers


class Recording(Workers):
    """Runs each task at once, noting what was submitted when (a fake: the order is what is tested)."""

    def __init__(self, position: list[int]) -> None:
        super().__init__(0, "unused")
        self.position = position
        self.submitted: list[tuple[int, int]] = []

    def submit(self, fn: Callable[[int], object], arg: int) -> Task[int]:
        self.submitted.append((arg, self.position[0]))
        task = Task(fn, arg)
        task.run()
        return task


@contextlib.contextmanager
def workers(count: int) -> Iterator[Workers]:
    pool = Workers(count, "test-readahead")
    try:
        yield pool
    finally:
        pool.close()


def test_items_come_in_order_and_each_needed_key_is_prefetched_once_within_the_window():
    position = [-1]
    pool = Recording(position)
    seen = []
    first_item = {}  # key -> the first item that needs it
    for item in range(60):
        for key in (item // 2, item // 2 + 1):  # each key needed by up to four items
            first_item.setdefault(key, item)
    for item in prefetching(range(60), lambda i: (i // 2, i // 2 + 1), lambda key: None, lambda key: key % 3 == 0,
                            pool, 4, 100):
        position[0] = item
        seen.append(item)
    assert seen == list(range(60))
    submitted = [key for key, _ in pool.submitted]
    assert submitted == sorted(k for k in first_item if k % 3 == 0)  # each needed key, once, in order
    for key, at in pool.submitted:
        # the window: never more than 4 keys started for items the consumer has not had yet
        assert len([k for k, _ in pool.submitted if first_item[k] > at and first_item[k] <= first_item[key]]) <= 4
        assert first_item[key] > at  # started before its first item was consumed


def test_the_consumer_never_waits_for_a_prefetch():
    release = threading.Event()
    with workers(1) as pool:
        consumed: list[int] = []
        gen = prefetching(range(5), lambda i: (i,), lambda _: release.wait(60), lambda _: True, pool, 2, 100)

        def consume() -> None:
            consumed.extend(next(gen) for _ in range(5))

        consumer = threading.Thread(target=consume)
        consumer.start()
        consumer.join(60)  # a liveness bound, not a speed one: the prefetches are held until after
        done = not consumer.is_alive()
        release.set()
        consumer.join()
        gen.close()
    assert done and consumed == list(range(5))


def test_a_consumer_that_stops_early_cancels_what_has_not_started_and_waits_for_the_rest():
    started = threading.Event()
    release = threading.Event()
    ran: list[int] = []

    def prefetch(item: int) -> None:
        started.set()
        release.wait(60)
        ran.append(item)

    with workers(1) as pool:
        gen = prefetching(range(10), lambda i: (i,), prefetch, lambda _: True, pool, 3, 100)
        assert next(gen) == 0
        started.wait(60)
        threading.Timer(0.1, release.set).start()
        gen.close()  # returns once the started prefetch has finished
        finished = list(ran)
    assert finished == [0]
    assert ran == [0]  # the worker drained the queue as it closed: what was cancelled never ran


def test_with_nothing_to_prefetch_the_window_holds_at_most_most_items():
    pulled = []

    def source():
        for item in range(1000):
            pulled.append(item)
            yield item

    for item in prefetching(source(), lambda i: (i,), lambda key: None, lambda key: False, Recording([0]), 4, 8):
        assert len(pulled) - item <= 8  # memory bounded whatever the number of items


class Counting(Workers):
    """Real workers that note each key handed to them."""

    def __init__(self, count: int) -> None:
        super().__init__(count, "test-readahead")
        self.submitted: list[int] = []

    def submit(self, fn: Callable[[int], object], arg: int) -> Task[int]:
        self.submitted.append(arg)
        return super().submit(fn, arg)


def test_with_real_workers_each_key_is_handed_over_once_and_run_at_most_once_and_items_come_in_order():
    counts: dict[int, int] = {}
    lock = threading.Lock()

    def prefetch(key: int) -> None:
        with lock:
            counts[key] = counts.get(key, 0) + 1

    pool = Counting(2)
    try:
        seen = list(prefetching(range(500), lambda i: (i // 3, i // 3 + 1), prefetch, lambda key: True, pool, 3, 100))
    finally:
        pool.close()
    assert seen == list(range(500))
    assert pool.submitted == list(range(500 // 3 + 2))
    assert set(counts.values()) <= {1}  # a prefetch the consumer overtook is cancelled, never run twice


def test_at_most_ahead_prefetches_are_started_for_items_the_consumer_has_not_had():
    release = threading.Event()
    pool = Counting(2)
    try:
        gen = prefetching(range(40), lambda i: (i,), lambda _: release.wait(60), lambda _: True, pool, 3, 100)
        for _ in range(40):  # every prefetch is held: all that were started are in flight
            item = next(gen)
            assert item in pool.submitted
            assert len([key for key in pool.submitted if key > item]) <= 3
        assert pool.submitted == list(range(40))
    finally:
        release.set()
        gen.close()
        pool.close()


def test_a_prefetch_that_fails_does_not_reach_the_consumer_or_stop_the_workers(monkeypatch):
    escaped: list[object] = []
    monkeypatch.setattr(threading, "excepthook", escaped.append)

    def prefetch(key: int) -> None:
        if key % 2:
            raise OSError(f"frame {key} is unreadable")

    with workers(1) as pool:
        assert list(prefetching(range(20), lambda i: (i,), prefetch, lambda _: True, pool, 3, 100)) == list(range(20))
    assert escaped == []


def test_once_a_consumer_stops_early_no_worker_is_still_prefetching():
    running = [0]
    lock = threading.Lock()
    release = threading.Event()

    def prefetch(item: int) -> None:
        with lock:
            running[0] += 1
        try:
            release.wait(60)
        finally:
            with lock:
                running[0] -= 1

    with workers(2) as pool:
        gen = prefetching(range(10), lambda i: (i,), prefetch, lambda _: True, pool, 3, 100)
        assert next(gen) == 0
        threading.Timer(0.1, release.set).start()
        gen.close()  # returns once both started prefetches have finished
        still_running = running[0]
    assert still_running == 0
