"""`cairn list`: every path of a store with its NAR size and registration time, streamed.

A page of paths at a time, so a store of millions lists in bounded memory; the paths come in
the store's own order. Registration times are what the store recorded when a path was added
(the embedded store does; a daemon or a binary cache read through does not: shown as unknown).
"""

from __future__ import annotations

import itertools
import json
import time
from dataclasses import dataclass
from typing import Iterable, Iterator

from store.storepath import StorePath
from store.url import Store

PAGE = 1000


@dataclass(frozen=True, slots=True)
class Listed:
    store_path: StorePath
    nar_size: int
    registered: int | None
    """Unix seconds; None when the store does not know."""


def list_paths(store: Store) -> Iterator[Listed]:
    infos = iter(store.pathinfo.list())
    while page := list(itertools.islice(infos, PAGE)):
        times = store.pathinfo.registration_times([i.store_path.digest for i in page])
        for info, registered in zip(page, times):
            yield Listed(info.store_path, info.nar_size, registered)


def listed_line(listed: Listed) -> str:
    """`path<TAB>NAR size<TAB>registration time (UTC, ISO 8601, or -)`."""
    when = "-" if listed.registered is None else time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(listed.registered))
    return f"{listed.store_path.absolute}\t{listed.nar_size}\t{when}"


def listed_json(listed: Iterable[Listed]) -> Iterator[str]:
    """A JSON list in pieces, one path a line, with `nix path-info --json`'s field names."""
    yield "["
    for n, item in enumerate(listed):
        entry = {"path": item.store_path.absolute, "narSize": item.nar_size, "registrationTime": item.registered}
        yield f"{',' if n else ''}\n{json.dumps(entry)}"
    yield "\n]\n"
