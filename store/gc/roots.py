"""GC roots: named sets of store paths kept, with their closures, until the root is removed.

Like Nix's gcroots, but records in the store's metadata, so every process serving the store
sees them. `cairn root add NAME PATH...` sets the root NAME to those paths.
"""

from __future__ import annotations

import re
from typing import Iterator

from castore.errors import NotFoundError, ValidationError
from castore.local.engine import LocalEngine
from castore.storage.metadata import Table
from store.pathinfo.local import PATHINFO
from store.storepath import StorePath

ROOTS = Table("gc-roots")
"""Root name -> its store paths, absolute, one a line."""
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._+@-]{0,199}")


def check_name(name: str) -> bytes:
    if not _NAME.fullmatch(name):
        raise ValidationError(f"invalid root name {name[:80]!r}: 1..200 of [A-Za-z0-9._+@-], not starting with a symbol")
    return name.encode()


def add_root(engine: LocalEngine, name: str, paths: list[StorePath]) -> None:
    """Set root `name` to `paths`, each of which the store must hold."""
    key = check_name(name)
    if not paths:
        raise ValidationError("a root names at least one store path")
    found = engine.records.get_many(PATHINFO, [p.digest for p in paths])
    missing = [p.absolute for p, raw in zip(paths, found) if raw is None]
    if missing:
        raise NotFoundError(f"not in the store: {' '.join(missing)}")
    engine.records.put(ROOTS, [(key, "\n".join(sorted({p.absolute for p in paths})).encode())])


def remove_root(engine: LocalEngine, name: str) -> None:
    key = check_name(name)
    engine.commit()
    if engine.metadata.get(ROOTS, key) is None:
        raise NotFoundError(f"no root named {name!r}")
    engine.metadata.commit({}, {ROOTS: [key]})


def roots(engine: LocalEngine) -> Iterator[tuple[str, list[StorePath]]]:
    """Every root and its paths, by name."""
    for key, value in engine.records.items(ROOTS):
        yield key.decode(), [StorePath.parse(line) for line in value.decode().splitlines()]
