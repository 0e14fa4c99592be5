"""Service URLs for the Nix layer: one URL opens castore and PathInfoService together."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from castore.url import CAStore, default_store_url, grpc_target, local_path, open_castore, scheme
from store.pathinfo.service import PathInfoService

if TYPE_CHECKING:  # the extras module imports the LMDB engine, which gRPC clients need not load
    from store.narinfo_extras import NarinfoExtrasService


def open_pathinfo_service(url: str, castore: CAStore) -> PathInfoService:
    """memory:// and local:// compute NARs from `castore`; gRPC asks the daemon."""
    s = scheme(url)
    if s == "memory":
        from store.pathinfo.memory import MemoryPathInfoService
        return MemoryPathInfoService(castore)
    if s == "local":
        from castore.local.engine import LocalEngine
        from store.pathinfo.local import LocalPathInfoService
        return LocalPathInfoService(LocalEngine.open(local_path(url)), castore)
    from store.pathinfo.grpc import GrpcPathInfoService
    return GrpcPathInfoService(grpc_target(url))


def open_extras_service(url: str) -> NarinfoExtrasService | None:
    """Beside the path infos of memory:// and local://; None over gRPC (the protocol has no place)."""
    s = scheme(url)
    if s == "memory":
        from store.narinfo_extras import MemoryNarinfoExtras
        return MemoryNarinfoExtras()
    if s == "local":
        from castore.local.engine import LocalEngine
        from store.narinfo_extras import LocalNarinfoExtras
        return LocalNarinfoExtras(LocalEngine.open(local_path(url)))
    return None


@dataclass
class Store:
    """castore plus PathInfoService: everything a Nix-facing program needs."""

    castore: CAStore
    pathinfo: PathInfoService
    extras_url: str | None = None
    """Where `extras` are kept (see open_extras_service): opened on first use, as few commands need them."""
    _extras: NarinfoExtrasService | None = field(default=None, init=False, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, init=False, repr=False)

    @property
    def extras(self) -> NarinfoExtrasService | None:
        """Narinfo fields PathInfo cannot hold."""
        with self._lock:
            if self._extras is None and self.extras_url is not None:
                self._extras = open_extras_service(self.extras_url)
            return self._extras

    def close(self) -> None:
        with self._lock:
            if self._extras is not None:
                self._extras.close()
        self.pathinfo.close()
        self.castore.close()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def open_store(url: str | None = None, *, blob_url: str | None = None, directory_url: str | None = None,
               pathinfo_url: str | None = None) -> Store:
    """Open all three services from one URL; the specific URLs override it."""
    castore = open_castore(url, blob_url=blob_url, directory_url=directory_url)
    pathinfo_url = pathinfo_url or url or default_store_url()
    return Store(castore, open_pathinfo_service(pathinfo_url, castore), pathinfo_url)
