"""One engine per store and process, found by its location (see castore/storage/location.py):
`local:///dir` is LMDB metadata in dir/meta and pack files in dir/packs; `packs=` and
`postgresql://` put either part elsewhere.

Every service of a store shares its engine, so they see each other's staged records and
share one batch; the last close commits and closes it.
"""

from __future__ import annotations

import functools

from castore.local.engine import LocalEngine, StoreFormatError
from castore.storage.location import Location
from castore.storage.shared import Shared

_engines: Shared[LocalEngine] = Shared()


def open_engine(url: str) -> LocalEngine:
    """The process's engine for the store at `url` (or a local store's directory), created on
    first use; close() releases it."""
    location = Location.parse(url if "://" in url else f"local://{url}")
    return _engines.acquire(location, functools.partial(_create, location))


def _create(location: Location) -> LocalEngine:
    metadata = location.open_metadata()
    try:
        return LocalEngine(metadata, location.open_packs(), release=functools.partial(_engines.release, location))
    except StoreFormatError as e:
        metadata.close()
        raise StoreFormatError(f"{location.metadata}: {e}") from None
    except BaseException:
        metadata.close()
        raise
