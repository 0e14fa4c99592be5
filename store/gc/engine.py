"""The embedded engine under a Store: what garbage collection, roots and delete work on."""

from __future__ import annotations

from castore.errors import ValidationError
from castore.local.engine import EngineUser, LocalEngine
from store.url import Store


def engine_of(store: Store) -> LocalEngine:
    """The engine keeping the store's blobs, directories and path infos; ValidationError when
    they are not one embedded store (a daemon, a cache in front of one): GC runs on the store
    itself, where it can see every record."""
    services = (store.castore.blobs, store.castore.directories, store.pathinfo)
    engines = {id(s.engine): s.engine for s in services if isinstance(s, EngineUser)}
    if len(engines) != 1 or not all(isinstance(s, EngineUser) for s in services):
        raise ValidationError("garbage collection, roots and delete work on an embedded store "
                              "(--store local:///dir), not through a daemon or a cache")
    return next(iter(engines.values()))
