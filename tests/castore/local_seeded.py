"""Seeded blobs and directory closures: writer processes and the checks rebuild them from a seed."""

from __future__ import annotations

import random

from castore.digest import B3Digest
from castore.nodes import Directory, FileNode, SymlinkNode


def blob_data(seed: int) -> bytes:
    """Mostly small blobs (one chunk), some medium, a few of several MiB."""
    rnd = random.Random(seed)
    kind = rnd.random()
    if kind < 0.6:
        size = rnd.randint(0, 4000)
    elif kind < 0.9:
        size = rnd.randint(16_000, 300_000)
    else:
        size = rnd.randint(1 << 20, 3 << 20)
    return rnd.randbytes(size)


def closure(seed: int) -> list[Directory]:
    """Leaves first: leaf, mid (-> leaf), root (-> mid as "mid", leaf as "again")."""
    rnd = random.Random(seed)
    leaf = Directory.of([FileNode(b"f%d" % i, B3Digest.of(b"%f" % rnd.random()), i)
                         for i in range(rnd.randint(1, 30))])
    mid = Directory.of([leaf.as_node(b"leaf"), SymlinkNode(b"l", b"leaf/f0")])
    return [leaf, mid, Directory.of([mid.as_node(b"mid"), leaf.as_node(b"again")])]
