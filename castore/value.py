"""Value: the base of the immutable values (nodes, store paths, hashes) built as named tuples.

A named tuple builds about twice as fast as a frozen dataclass, and a command that defines no
dataclass does not import `dataclasses` (with inspect, ast, dis and tokenize: ~7 ms of every
`cairn dump`). A bare named tuple is still a tuple, though: equal to any tuple with equal items,
ordered item by item, rebuilt by `_make` and `_replace` without its type's checks. A Value is
equal only to a value of its own type (so a FileNode never matches a plain tuple or another
type's value in a set or dict), has no order of its own, and is rebuilt through its validating
constructor: what the frozen dataclass it replaces did.
"""

from __future__ import annotations

from typing import Any, Iterable, TypeVar

V = TypeVar("V", bound="Value")
_tuple_eq = tuple.__eq__
_tuple_ne = tuple.__ne__


class Value:
    """Mixed in before a named tuple: `class X(Value, namedtuple("X", ...))` with a validating `__new__`."""

    __slots__ = ()
    _fields: tuple[str, ...]

    def __eq__(self, other: object) -> Any:
        if type(other) is type(self):
            return _tuple_eq(self, other)  # type: ignore[arg-type]
        return False if isinstance(other, tuple) else NotImplemented  # not the tuple's answer, nor its reflection

    def __ne__(self, other: object) -> Any:
        if type(other) is type(self):
            return _tuple_ne(self, other)  # type: ignore[arg-type]
        return True if isinstance(other, tuple) else NotImplemented

    __hash__ = tuple.__hash__  # the hash a frozen dataclass gives: that of the tuple of its fields

    def _unordered(self, other: object) -> Any:
        """No order of its own (a type may define __lt__, as StorePath does), nor a tuple's."""
        if isinstance(other, tuple) and type(other) is not type(self):
            raise TypeError(f"{type(self).__name__} and {type(other).__name__} have no order")
        return NotImplemented

    __lt__ = __le__ = __gt__ = __ge__ = _unordered

    @classmethod
    def _make(cls: type[V], iterable: Iterable[Any]) -> V:
        return cls(*iterable)

    def _replace(self: V, **changes: Any) -> V:
        """This value with some fields changed, checked again as at construction (dataclasses.replace)."""
        return type(self)(**dict(zip(self._fields, self), **changes))  # type: ignore[call-overload]
