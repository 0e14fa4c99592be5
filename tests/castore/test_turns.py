"""Turns (castore/turns.py): at most `slots` threads inside, the others entering in the order they
came; in_turns makes each item in a turn, releases it on errors, and closes what it wraps."""

from __future__ import annotations

import threading
import time
from typing import Iterator

import pytest

from castore.turns import Turns, in_turns


def until(condition, wait: float = 30.0) -> None:
    deadline = time.monotonic() + wait
    while not condition():
        assert time.monotonic() < deadline, "never happened"
        time.sleep(0.001)


def test_at_most_slots_threads_are_inside() -> None:
    turns = Turns(2)
    inside = most = 0
    lock = threading.Lock()

    def work() -> None:
        nonlocal inside, most
        for _ in range(20):
            with turns:
                with lock:
                    inside += 1
                    most = max(most, inside)
                time.sleep(0.0005)
                with lock:
                    inside -= 1

    threads = [threading.Thread(target=work) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert most == 2 and inside == 0


def test_waiting_threads_enter_in_the_order_they_came() -> None:
    turns = Turns(1)
    entered: list[int] = []
    turns.__enter__()
    threads = []
    for i in range(6):
        def enter(i: int = i) -> None:
            with turns:
                entered.append(i)
        threads.append(threading.Thread(target=enter))
        threads[-1].start()
        until(lambda: len(turns._waiting) == i + 1)
    turns.__exit__(None, None, None)
    for t in threads:
        t.join()
    assert entered == list(range(6))


def test_each_item_is_made_in_a_turn_and_the_turn_is_left_after_it() -> None:
    turns = Turns(1)

    def items() -> Iterator[int]:
        for i in range(3):
            assert not turns._free  # made inside the turn
            yield i

    made = []
    for item in in_turns(items(), turns):
        assert turns._free == 1  # the consumer holds no turn between items
        made.append(item)
    assert made == [0, 1, 2]


def test_an_error_leaves_the_turn_and_closing_closes_the_source() -> None:
    turns = Turns(1)
    closed = []

    def failing() -> Iterator[int]:
        yield 1
        raise RuntimeError("render failed")

    with pytest.raises(RuntimeError):
        list(in_turns(failing(), turns))
    assert turns._free == 1

    def endless() -> Iterator[int]:
        try:
            while True:
                yield 0
        finally:
            closed.append(True)

    taken = in_turns(endless(), turns)
    next(taken)
    taken.close()
    assert closed == [True] and turns._free == 1


def test_a_turn_needs_a_slot() -> None:
    with pytest.raises(ValueError):
        Turns(0)
