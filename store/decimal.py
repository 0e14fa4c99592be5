"""Unsigned decimal numbers from clients and upstream documents (narinfo sizes, `?narsize=`).

Python's `int()` takes any Unicode digit and refuses more than 4300 digits with a bare
ValueError; the Nix formats mean ASCII digits of a u64. Both are checked here, before
conversion, so a bad number is a ValidationError naming the field.
"""

from __future__ import annotations

import re

from castore.errors import ValidationError

U64_MAX = (1 << 64) - 1
_DIGITS = re.compile(r"[0-9]{1,20}", re.ASCII)


def parse_u64(text: str, what: str) -> int:
    """`text` as a u64 written in ASCII decimal digits."""
    if not _DIGITS.fullmatch(text) or int(text) > U64_MAX:
        raise ValidationError(f"{what} is not an unsigned 64-bit integer: {text[:40]!r}")
    return int(text)
