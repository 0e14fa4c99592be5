"""in_order: results in order, work taken lazily and bounded by frames and tasks ahead."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Callable, Iterator

from castore.local.readahead import batched, in_order


def numbered(n: int, opens: Callable[[int], bool], taken: list[int]) -> Iterator[tuple[Callable[[], int], bool]]:
    for i in range(n):
        taken.append(i)
        yield (lambda i=i: i * i), opens(i)


def test_results_come_in_order_whatever_finishes_first() -> None:
    gate = threading.Event()

    def slow() -> str:
        gate.wait(5)
        return "first"

    def fast() -> str:
        gate.set()
        return "second"

    with ThreadPoolExecutor(2) as pool:
        assert list(in_order(iter([(slow, True), (fast, True)]), pool, 4, 8)) == ["first", "second"]


def test_tasks_are_taken_only_while_fewer_frames_and_tasks_than_the_bounds_are_ahead() -> None:
    with ThreadPoolExecutor(2) as pool:
        taken: list[int] = []
        results = in_order(numbered(100, lambda i: i % 10 == 0, taken), pool, 2, 50)
        assert next(results) == 0
        assert len(taken) == 11  # the first frame's tasks 0-9 and task 10, which opens the second
        assert next(results) == 1
        assert len(taken) == 21  # task 0, which opened the first, is consumed: up to the third frame's first
        taken.clear()
        results = in_order(numbered(100, lambda i: False, taken), pool, 2, 50)
        assert next(results) == 0
        assert len(taken) == 50  # no frame opened: the task bound holds
        assert list(results) == [i * i for i in range(1, 100)]


def test_closing_early_cancels_what_has_not_started_and_waits_for_what_has() -> None:
    started: list[int] = []
    gate = threading.Event()

    def task(i: int) -> int:
        started.append(i)
        if i:
            gate.wait(5)
        return i

    with ThreadPoolExecutor(1) as pool:
        results = in_order((((lambda i=i: task(i)), True) for i in range(10)), pool, 4, 8)
        assert next(results) == 0
        threading.Timer(0.1, gate.set).start()
        results.close()  # task 1 may be running: close returns once it is done
        assert gate.is_set() or started == [0]
        assert started in ([0], [0, 1])


def test_batched_takes_items_only_as_each_list_is_asked_for() -> None:
    taken: list[int] = []

    def items() -> Iterator[int]:
        for i in range(7):
            taken.append(i)
            yield i

    batches = batched(items(), 3)
    assert next(batches) == [0, 1, 2] and taken == [0, 1, 2]
    assert list(batches) == [[3, 4, 5], [6]]
