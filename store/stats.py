"""Whole-store figures (`cairn stats`): how much the store holds and what it costs on disk.

The Nix side (paths, NAR bytes) comes from PathInfoService; the castore side from the blob
backend's optional `usage()`, which a remote backend cannot answer.
"""

from __future__ import annotations

from dataclasses import dataclass

from castore.blobs.service import BlobUsage
from castore.progress import human_bytes
from store.url import Store


@dataclass(frozen=True)
class StoreStats:
    paths: int
    nar_bytes: int
    """Sum of every path's NarSize: what a binary cache would hold uncompressed."""
    blobs: BlobUsage | None
    """None when the blob service cannot tell."""
    gc: dict | None = None
    """Garbage collection's status (store/gc/collect.py status); None when the store is not embedded."""

    @property
    def dedup_ratio(self) -> float | None:
        """NAR bytes over logical (deduplicated) bytes."""
        return _ratio(self.nar_bytes, self.blobs.chunk_bytes) if self.blobs else None

    @property
    def logical_ratio(self) -> float | None:
        """Logical bytes over stored bytes: what compression saves."""
        return _ratio(self.blobs.chunk_bytes, self.blobs.stored_bytes) if self.blobs else None

    @property
    def nar_ratio(self) -> float | None:
        """NAR bytes over stored bytes: what the store saves against plain NARs."""
        return _ratio(self.nar_bytes, self.blobs.stored_bytes) if self.blobs else None

    def to_json(self) -> dict:
        out: dict = {"paths": self.paths, "narBytes": self.nar_bytes}
        if self.blobs:
            b = self.blobs
            out |= {"chunkedBlobs": b.chunked_blobs, "standaloneChunks": b.standalone_chunks, "chunks": b.chunks,
                    "deltaChunks": b.delta_chunks,
                    "logicalBytes": b.chunk_bytes, "packBytes": b.pack_bytes,
                    "indexBytes": b.index_bytes, "storedBytes": b.stored_bytes,
                    "dedupRatio": self.dedup_ratio, "logicalRatio": self.logical_ratio,
                    "narRatio": self.nar_ratio}
        if self.gc is not None:
            out["gc"] = self.gc
        return out

    def lines(self) -> list[str]:
        """The figures for people, one per line."""
        out = [f"paths          {self.paths}",
               f"NAR bytes      {human_bytes(self.nar_bytes)}"]
        b = self.blobs
        if b is None:
            return out + ["blobs, chunks and stored bytes: unknown (the blob service cannot tell)"]
        return out + self._gc_lines() + [
            f"chunked blobs  {b.chunked_blobs}",
            f"chunks         {b.chunks} ({b.standalone_chunks} stand-alone: one-piece blobs, directories; "
            f"{b.delta_chunks} stored as deltas)",
            f"logical bytes  {human_bytes(b.chunk_bytes)} (all chunks, each once)",
            f"stored bytes   {human_bytes(b.stored_bytes)} "
            f"({human_bytes(b.pack_bytes)} packs + {human_bytes(b.index_bytes)} index)",
            f"dedup          {_times(self.dedup_ratio)} (NAR / logical)",
            f"compression    {_times(self.logical_ratio)} (logical / stored)",
            f"overall        {_times(self.nar_ratio)} (NAR / stored)"]


    def _gc_lines(self) -> list[str]:
        if self.gc is None:
            return []
        import time

        last = self.gc["lastRun"]
        when = "never" if last is None else (
            f"{time.strftime('%Y-%m-%d %H:%M:%S UTC', time.gmtime(last['started']))}, freed "
            f"{last['pathsDeleted']} paths and {human_bytes(last['storeBytesBefore'] - last['storeBytesAfter'])}")
        return [f"last gc        {when}",
                f"reclaimable    {human_bytes(self.gc['reclaimableBytes'])} of packs retired, freed by the next gc "
                "after the grace period (`cairn gc --dry-run` tells what unkept paths would free)"]


def store_stats(store: Store) -> StoreStats:
    """Reads every path info once; the blob figures walk the backend's records."""
    from store.gc.collect import status

    paths = nar_bytes = 0
    for info in store.pathinfo.list():
        paths += 1
        nar_bytes += info.nar_size
    return StoreStats(paths, nar_bytes, store.castore.blobs.usage(), status(store))


def _ratio(a: int, b: int) -> float | None:
    return a / b if b else None


def _times(ratio: float | None) -> str:
    return "-" if ratio is None else f"{ratio:.2f}x"
