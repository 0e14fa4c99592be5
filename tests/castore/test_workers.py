"""workers.Workers: calls run in the order handed over, a cancelled one never, a failing one
dropped without stopping its worker, and close() runs what was handed over, then joins."""

from __future__ import annotations

import threading

import pytest

from castore.local.workers import Task, Workers


def test_one_worker_runs_the_calls_in_the_order_they_were_handed_over():
    ran: list[int] = []
    pool = Workers(1, "test-workers")
    tasks = [pool.submit(ran.append, i) for i in range(100)]
    for task in tasks:
        task.wait()
    pool.close()
    assert ran == list(range(100))
    assert all(task.done() for task in tasks)


def test_a_call_cancelled_before_a_worker_takes_it_never_runs():
    release = threading.Event()
    ran: list[int] = []
    pool = Workers(1, "test-workers")
    first = pool.submit(lambda _: release.wait(60), 0)
    second = pool.submit(ran.append, 1)
    assert second.cancel() and second.done()
    second.wait()  # returns at once for a cancelled call
    release.set()
    first.wait()
    pool.close()  # the worker takes the cancelled call off the queue on its way out
    assert ran == [] and not first.cancel()


def test_a_running_call_is_not_cancelled_and_wait_returns_once_it_has_finished():
    started = threading.Event()
    release = threading.Event()
    finished: list[bool] = []

    def call(_: int) -> None:
        started.set()
        release.wait(60)
        finished.append(True)

    pool = Workers(1, "test-workers")
    task = pool.submit(call, 0)
    started.wait(60)
    assert not task.cancel() and not task.done()
    threading.Timer(0.1, release.set).start()
    task.wait()
    assert finished == [True] and task.done()
    pool.close()


def test_a_failing_call_is_dropped_and_its_worker_goes_on(monkeypatch):
    escaped: list[object] = []
    monkeypatch.setattr(threading, "excepthook", escaped.append)
    ran: list[int] = []

    def fail(_: int) -> None:
        raise OSError("unreadable")

    pool = Workers(1, "test-workers")
    failing = pool.submit(fail, 0)
    after = pool.submit(ran.append, 1)
    failing.wait()
    after.wait()
    pool.close()
    assert failing.done() and ran == [1] and escaped == []


def test_close_runs_what_was_handed_over_then_joins_its_threads_and_refuses_more():
    ran: list[int] = []
    pool = Workers(2, "test-workers-close")
    for i in range(50):
        pool.submit(ran.append, i)
    threads = [t for t in threading.enumerate() if t.name.startswith("test-workers-close")]
    assert len(threads) == 2 and all(t.daemon for t in threads)  # a process may end without close()
    pool.close()
    assert sorted(ran) == list(range(50))
    assert not any(t.is_alive() for t in threads)
    with pytest.raises(RuntimeError):
        pool.submit(ran.append, 50)


def test_a_task_run_by_hand_runs_once():
    ran: list[int] = []
    task = Task(ran.append, 7)
    task.run()
    task.run()
    assert ran == [7] and task.done()
