"""readahead.prefetching: items in order, each key prefetched once, only the keys that need it and
only within the window, the consumer never waiting for one, none left running once it stops."""

from __future__ import annotations

import threading
from concurrent.futures import Executor, Future, ThreadPoolExecutor

from castore.local.readahead import prefetching


class Recording(Executor):
    """Runs each task at once, noting what was submitted when (a fake: the order is what is tested)."""

    def __init__(self, position: list[int]) -> None:
        self.position = position
        self.submitted: list[tuple[int, int]] = []

    def submit(self, fn, /, *args, **kwargs) -> Future:
        self.submitted.append((args[0], self.position[0]))
        future: Future = Future()
        future.set_result(fn(*args, **kwargs))
        return future



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
    with ThreadPoolExecutor(1) as pool:
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

    with ThreadPoolExecutor(1) as pool:
        gen = prefetching(range(10), lambda i: (i,), prefetch, lambda _: True, pool, 3, 100)
        assert next(gen) == 0
        started.wait(60)
        threading.Timer(0.1, release.set).start()
        gen.close()  # returns once the started prefetch has finished
        finished = list(ran)
    assert finished == [0]


def test_with_nothing_to_prefetch_the_window_holds_at_most_most_items():
    pulled = []

    def source():
        for item in range(1000):
            pulled.append(item)
            yield item

    for item in prefetching(source(), lambda i: (i,), lambda key: None, lambda key: False, Recording([0]), 4, 8):
        assert len(pulled) - item <= 8  # memory bounded whatever the number of items
