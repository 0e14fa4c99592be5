"""readahead.in_order: results in order, and a consumer never waits on a pool busy with others' tasks."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

from castore.local.readahead import in_order


def test_results_come_in_order():
    with ThreadPoolExecutor(2) as pool:
        assert list(in_order((lambda i=i: i * i for i in range(50)), pool, 4)) == [i * i for i in range(50)]


def test_a_task_no_worker_started_runs_in_the_consumers_thread():
    release = threading.Event()
    with ThreadPoolExecutor(1) as pool:
        pool.submit(release.wait)  # another stream's task holds the only worker
        ran_in: list[threading.Thread] = []
        results: list[int] = []

        def consume() -> None:
            def task(i: int) -> int:
                ran_in.append(threading.current_thread())
                return i

            results.extend(in_order((lambda i=i: task(i) for i in range(5)), pool, 2))

        consumer = threading.Thread(target=consume)
        consumer.start()
        consumer.join(60)  # a liveness bound, not a speed one: before, this waited for `release` forever
        finished = not consumer.is_alive()
        release.set()
        consumer.join()
    assert finished and results == list(range(5)) and set(ran_in) == {consumer}
