"""Children first: an order in which everything comes after all it refers to.

A directory closure is put leaves first; paths are copied after their references. Both
walk a graph given by a children function, without recursion (trees can be deep).
"""

from __future__ import annotations

from typing import Callable, Hashable, Iterable, TypeVar

T = TypeVar("T")


def children_first(starts: Iterable[T], children: Callable[[T], Iterable[T]],
                   key: Callable[[T], Hashable]) -> list[T]:
    """Every item reachable from `starts`, once each, after every item it reaches (a cycle's
    back edge is ignored)."""
    order: list[T] = []
    done: set[Hashable] = set()
    entered: set[Hashable] = set()
    for start in starts:
        stack = [(start, False)]
        while stack:
            item, children_done = stack.pop()
            k = key(item)
            if k in done:
                continue
            if children_done:
                done.add(k)
                order.append(item)
                continue
            if k in entered:
                continue  # a cycle: an item refers back to one still being entered
            entered.add(k)
            stack.append((item, True))
            stack.extend((c, False) for c in children(item) if key(c) not in done)
    return order
