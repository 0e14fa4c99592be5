"""Items gathered into groups bounded in bytes: gRPC messages, pack store reads."""

from __future__ import annotations

from typing import Callable, Iterable, Iterator, TypeVar

T = TypeVar("T")


def grouped(items: Iterable[T], size: Callable[[T], int], limit: int, most: int | None = None) -> Iterator[list[T]]:
    """Consecutive items in groups of at most `limit` bytes by `size` (or one larger item) and at
    most `most` items."""
    group: list[T] = []
    total = 0
    for item in items:
        n = size(item)
        if group and (total + n > limit or (most is not None and len(group) >= most)):
            yield group
            group, total = [], 0
        group.append(item)
        total += n
    if group:
        yield group
