"""Service URLs for the Nix layer: one URL opens castore and PathInfoService together."""

from __future__ import annotations

from dataclasses import dataclass

from castore.url import CAStore, default_store_url, grpc_target, local_path, open_castore, scheme
from store.pathinfo.service import PathInfoService


def open_pathinfo_service(url: str, castore: CAStore) -> PathInfoService:
    """memory:// and local:// compute NARs from `castore`; gRPC asks the daemon."""
    s = scheme(url)
    if s == "memory":
        from store.pathinfo.memory import MemoryPathInfoService
        return MemoryPathInfoService(castore)
    if s == "local":
        from castore.local.registry import open_engine
        from store.pathinfo.local import LocalPathInfoService
        return LocalPathInfoService(open_engine(local_path(url)), castore)
    from store.pathinfo.grpc import GrpcPathInfoService
    return GrpcPathInfoService(grpc_target(url))


@dataclass
class Store:
    """castore plus PathInfoService: everything a Nix-facing program needs."""

    castore: CAStore
    pathinfo: PathInfoService

    def close(self) -> None:
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
    return Store(castore, open_pathinfo_service(pathinfo_url, castore))
