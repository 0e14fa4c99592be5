"""Validation of a leaves-first directory closure, as uploaded by Put."""

from __future__ import annotations

from castore import limits
from castore.digest import B3Digest
from castore.errors import ValidationError
from castore.nodes import Directory
from castore.postorder import children_first


class ClosureValidator:
    """Feed directories leaves first; finish() checks there is one root and nothing dangles.

    A directory may refer only to directories seen earlier in the same closure, with
    the edge size equal to the child's size, and nest no deeper than castore.limits allow.
    Duplicates are tolerated.
    """

    def __init__(self) -> None:
        self._sizes: dict[bytes, int] = {}
        self._heights: dict[bytes, int] = {}  # directories below each, along its longest path
        self._max_depth = limits.max_depth()
        self._order: list[Directory] = []
        self._last: Directory | None = None

    def add(self, directory: Directory) -> None:
        height = 0
        for child in directory.directories:
            size = self._sizes.get(bytes(child.digest))
            if size is None:
                raise ValidationError(
                    f"directory {child.name!r} -> {child.digest} was not sent before its parent")
            if size != child.size:
                raise ValidationError(
                    f"directory {child.name!r} has size {child.size}, but its target has size {size}")
            height = max(height, self._heights[bytes(child.digest)] + 1)
        limits.check_depth(height, self._max_depth)
        self._last = directory
        if bytes(directory.digest) not in self._sizes:
            self._sizes[bytes(directory.digest)] = directory.size
            self._heights[bytes(directory.digest)] = height
            self._order.append(directory)

    def finish(self) -> tuple[B3Digest, list[Directory]]:
        """The root digest and the distinct directories, leaves first."""
        if self._last is None:
            raise ValidationError("no directories sent")
        root = self._last
        reachable = {bytes(root.digest)}
        for directory in reversed(self._order):
            if bytes(directory.digest) in reachable:
                reachable.update(bytes(c.digest) for c in directory.directories)
        dangling = [d for d in self._order if bytes(d.digest) not in reachable]
        if dangling:
            raise ValidationError(f"{len(dangling)} directories not reachable from the root "
                                  f"{root.digest} (e.g. {dangling[0].digest})")
        return root.digest, self._order


def leaves_first(closure: list[Directory]) -> list[Directory]:
    """A closure as get_recursive gives it (root first) reordered for put: every directory after
    all of its children. Reversing the breadth-first order is not enough: a directory shared at
    two depths is listed once, at the shallower one."""
    by_digest = {bytes(d.digest): d for d in closure}
    return children_first(closure[:1], lambda d: (by_digest[bytes(c.digest)] for c in d.directories),
                          lambda d: bytes(d.digest))
