"""One engine per local store and process: `local:///dir` is LMDB metadata in dir/meta and
pack files in dir/packs.

Every service of a store shares its engine, so they see each other's staged records and
share one batch; the last close commits and closes it.
"""

from __future__ import annotations

import functools
import os

from castore.local.engine import LocalEngine, StoreFormatError
from castore.storage.metadata_lmdb import LmdbMetadataStore
from castore.storage.packs_fs import FsPackStore
from castore.storage.shared import Shared

_engines: Shared[LocalEngine] = Shared()


def open_engine(path: str) -> LocalEngine:
    """The process's engine for the store at `path`, created on first use; close() releases it."""
    path = os.path.realpath(path)
    return _engines.acquire(path, functools.partial(_create, path))


def _create(path: str) -> LocalEngine:
    metadata = LmdbMetadataStore.open(os.path.join(path, "meta"))
    try:
        return LocalEngine(metadata, FsPackStore(os.path.join(path, "packs")),
                           release=functools.partial(_engines.release, path))
    except StoreFormatError as e:
        metadata.close()
        raise StoreFormatError(f"{path}: {e}") from None
    except BaseException:
        metadata.close()
        raise
