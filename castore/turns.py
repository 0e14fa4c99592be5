"""Renders take turns: at most a few threads of a process produce pieces at once, the others wait
in the order they asked.

A NAR render is Python code under the GIL, with short calls that release it (BLAKE3 of a chunk,
a frame's zstd, a socket write). With many renders runnable at once, a thread coming back from
such a call waits for the GIL behind the others, up to the switch interval (5 ms) each time: the
sixteen renders of sixteen connections took 1.8x the time of the same renders one after the
other (nar-bridge rendering every corpus NAR: 360 MiB/s with 16 connections, 640 MiB/s with 1).
With turns, each render produces one piece (about 1 MiB) per turn, in order, and waits for its
turn asleep (570 MiB/s with 16 connections). A thread sends outside its turn, so a slow client
does not hold one. `RENDERS` has two turns at least, so one render waiting on object storage
does not stop the others.

A turn's holder may wait on another process (a daemon's NarService or ReadMany, which take turns
of their own), never on a turn of its own process: nar-bridge and the daemon it reads from are
two processes.
"""

from __future__ import annotations

import collections
import os
import threading
from typing import Iterable, Iterator, TypeVar

T = TypeVar("T")


class Turns:
    """`slots` threads at a time in `with turns:`; the others enter in the order they came."""

    def __init__(self, slots: int) -> None:
        if slots < 1:
            raise ValueError(f"turns need a slot at least, got {slots}")
        self._lock = threading.Lock()
        self._free = slots
        self._waiting: collections.deque[threading.Lock] = collections.deque()

    def __enter__(self) -> None:
        with self._lock:
            if self._free and not self._waiting:
                self._free -= 1
                return
            turn = threading.Lock()
            turn.acquire()
            self._waiting.append(turn)
        turn.acquire()  # released by the thread whose turn ends: its slot passes to this one

    def __exit__(self, *exc: object) -> None:
        with self._lock:
            if self._waiting:
                self._waiting.popleft().release()
            else:
                self._free += 1


RENDERS = Turns(max(2, os.cpu_count() or 1))
"""The turns every render of this process takes (nar-bridge's NAR bodies, the daemon's NarService)."""


def in_turns(items: Iterable[T], turns: Turns = RENDERS) -> Iterator[T]:
    """Each item of `items`, produced during a turn of its own (closing this closes `items`)."""
    iterator = iter(items)
    try:
        while True:
            with turns:
                item = next(iterator, _END)
            if item is _END:
                return
            yield item  # type: ignore[misc]
    finally:
        close = getattr(iterator, "close", None)
        if close is not None:
            close()


_END = object()
