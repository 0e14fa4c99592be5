"""What the cluster tests check and build: trees that overlap, dumps compared with
`nix-store --dump`, and the records of a store walked against the objects it holds."""

from __future__ import annotations

import os
import random
from dataclasses import dataclass
from pathlib import Path

from castore.blobs.local import BLOBS, decode_chunk_list
from castore.local.engine import CHUNKS
from castore.local.frames import ChunkRecord
from castore.local.packs import PACKS, PackRow, number_of
from castore.storage.location import Location
from tests.conftest import _pseudo_random
from tests.services.cluster import Cluster
from tests.store.nixtool import nix

SHARED_BIG = 3 << 20
"""A file every tree holds: a few chunks each writer would store if nothing were shared."""


def overlapping_tree(root: Path, tag: str, files: int = 40, own_bytes: int = 1 << 20) -> Path:
    """A tree whose shared files (a big one and `files` small ones) are the same in every tree
    made here, and whose own files differ by `tag`."""
    (root / "shared").mkdir(parents=True)
    (root / "shared" / "big.bin").write_bytes(_pseudo_random(SHARED_BIG, seed=11))
    for n in range(files):
        (root / "shared" / f"small-{n}.txt").write_text(f"shared file {n}\n" * (n + 1))
    (root / "own").mkdir()
    (root / "own" / "data.bin").write_bytes(random.Random(tag).randbytes(own_bytes))  # incompressible
    (root / "own" / "tag").write_text(tag)
    os.symlink("shared/big.bin", root / "link")
    return root


def assert_dumps_like_nix(cluster: Cluster, store: str, trees: dict[str, Path]) -> None:
    """Each store path (-> the tree it was imported from) dumps from `store` as `nix-store --dump`
    dumps the tree."""
    for path, tree in trees.items():
        dumped = cluster.cairn("dump", "--store", store, path)
        assert dumped.returncode == 0, dumped.stderr.decode()
        assert dumped.stdout == nix("nix-store", "--dump", str(tree)), f"{path} differs from {tree}"


@dataclass
class Objects:
    """A store's pack records against its pack objects."""

    chunks: list[bytes]
    """The digest of every chunk record."""
    missing: list[str]
    """Problems: a blob listing a chunk with no record, a delta whose base has none, a chunk
    naming a pack number with no record, a pack record naming no object (or one of another size)."""
    unreferenced: int
    """Pack objects no record names: what a writer killed after its put left (garbage for GC)."""


def walk_objects(store: str) -> Objects:
    """Every chunk a blob lists or a delta builds on has a record, every chunk record's pack has a
    record, and every pack record an object of its size (the AWS_* environment must point at the
    object store)."""
    location = Location.parse(store)
    metadata = location.open_metadata()
    try:
        rows = {number_of(key): PackRow.decode(value) for key, value in metadata.items(PACKS)}
        chunks = [(digest, ChunkRecord.decode(raw)) for digest, raw in metadata.items(CHUNKS)]
        listed = {bytes(c.digest): digest for digest, raw in metadata.items(BLOBS)
                  for c in decode_chunk_list(digest, raw)}
    finally:
        metadata.close()
    packs = location.open_packs()
    try:
        stored = dict(packs.list())
    finally:
        packs.close()
    recorded = {digest for digest, _ in chunks}
    missing = [f"blob {blob.hex()} lists chunk {chunk.hex()}, which has no record"
               for chunk, blob in listed.items() if chunk not in recorded]
    missing += [f"chunk {digest.hex()} is a delta against {record.base.hex()}, which has no record"
                for digest, record in chunks if record.base is not None and record.base not in recorded]
    missing += [f"chunk {digest.hex()} names pack {record.location.pack}, which has no record"
                for digest, record in chunks if record.location.pack not in rows]
    missing += [f"pack {number} ({row.name}, {row.size} bytes) has no object of that size"
                for number, row in rows.items() if stored.get(row.name) != row.size]
    named = {row.name for row in rows.values()}
    return Objects([digest for digest, _ in chunks], missing, len(set(stored) - named))
