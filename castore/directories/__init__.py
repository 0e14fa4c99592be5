"""DirectoryService: the interface and its backends (memory, local, grpc)."""

from castore.directories.service import DirectoryService

__all__ = ["DirectoryService"]
