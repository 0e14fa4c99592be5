"""readahead.prefetching: items in order, prefetches only for the items that need one and only
within the window, the consumer never waiting for one, none left running once it stops."""

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



def test_items_come_in_order_and_only_the_needed_ones_are_prefetched_within_the_window():
    position = [-1]
    pool = Recording(position)
    seen = []
    for item in prefetching(range(50), lambda item: None, lambda i: i % 3 == 0, pool, 4):
        position[0] = item
        seen.append(item)
    assert seen == list(range(50))
    assert [item for item, _ in pool.submitted] == list(range(0, 50, 3))
    assert all(0 < item - at <= 4 + 1 for item, at in pool.submitted if at >= 0)  # ahead of the consumer, not far


def test_the_consumer_never_waits_for_a_prefetch():
    release = threading.Event()
    with ThreadPoolExecutor(1) as pool:
        consumed: list[int] = []
        gen = prefetching(range(5), lambda _: release.wait(60), lambda _: True, pool, 2)

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
        gen = prefetching(range(10), prefetch, lambda _: True, pool, 3)
        assert next(gen) == 0
        started.wait(60)
        threading.Timer(0.1, release.set).start()
        gen.close()  # returns once the started prefetch has finished
        finished = list(ran)
    assert finished == [0]
