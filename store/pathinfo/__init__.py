"""PathInfoService: store path -> root node + Nix metadata; interface and backends."""

from store.pathinfo.model import PathInfo
from store.pathinfo.service import PathInfoService

__all__ = ["PathInfo", "PathInfoService"]
