"""BlobService: the interface and its backends (memory, local, grpc)."""

from castore.blobs.service import BlobService, BlobStat, BlobWriter, ChunkMeta

__all__ = ["BlobService", "BlobStat", "BlobWriter", "ChunkMeta"]
