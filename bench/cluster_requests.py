"""Object-storage requests per GiB ingested and per NAR served, on the cluster (PostgreSQL + S3
packs on SeaweedFS).

Counted by the pack store's own counter (`S3PackStore.requests`: one per PUT, ranged GET, HEAD,
LIST page sent; obstore's internal retries are not seen), so both steps run in this process
through `store.api`: `import_path` of the seven corpus trees, one commit each as a service
acknowledging each path as it comes makes (a nar-bridge upload, a daemon's PathInfo Put), per GiB
of NAR ingested (and again into another empty store in one batch, one commit for all seven, as
`cairn import` of several trees and bulk copies make); then `dump` of each path (nar-bridge renders a NAR the
same way, through store.nar's layout) from a freshly opened store, so no process cache holds a
chunk.

A commit that acknowledges a write puts the open pack (its data must be durable before its
records), so one commit per tree costs a PUT per tree however little of it is new: this corpus
deduplicates and compresses to about 3 MiB per tree, so that floor is 7 PUTs for 0.246 GiB. In
one batch, early commits leave the open pack open and packs are put full. What the figure
tends to for large imports is shown by a third import, of 512 MiB of incompressible files in one
tree (nothing to deduplicate or compress: a PUT per full pack, and a GET per delta base read back
from a pack no longer in memory: on random data those are chance matches of the 32-bit sketch
features); and by the same import through `packs-cache=`, which keeps the frames of the packs
the writer put on local disk.

Targets: at most 20 requests per GiB ingested; none for per NAR served.
"""

from __future__ import annotations

import contextlib
import os
from collections import Counter
from pathlib import Path

from cluster_services import cluster, s3_packs
from common import ROOT, corpus_trees, fresh_dir

from store import api
from store.pathinfo.model import PathInfo
from store.url import open_store

GiB = 1 << 30
WORK = ROOT / "bench" / "out" / "cluster-requests"
INCOMPRESSIBLE = 512 << 20


def ingest(url: str, trees: list[Path], one_batch: bool = False) -> tuple[list[PathInfo], Counter[str]]:
    """The path infos of `trees` imported into the store at `url`, and the requests sent."""
    with open_store(url) as store:
        requests = s3_packs(store).requests  # still counting until the store is closed
        with store.castore.batch() if one_batch else contextlib.nullcontext():
            infos = [api.import_path(store, tree) for tree in trees]
    return infos, requests


def incompressible_tree() -> Path:
    """A tree of 64 MiB files of random bytes, INCOMPRESSIBLE in all."""
    tree = fresh_dir(WORK / "incompressible")
    for i in range(INCOMPRESSIBLE // (64 << 20)):
        (tree / f"random-{i}").write_bytes(os.urandom(64 << 20))
    return tree


def ingest_line(what: str, infos: list[PathInfo], requests: Counter[str]) -> str:
    ingested = sum(info.nar_size for info in infos)
    per_gib = requests.total() / (ingested / GiB)
    return (f"object-storage requests per GiB ingested, {what}: {per_gib:.1f} ({requests.total()} requests "
            f"{dict(requests)} for {ingested / GiB:.3f} GiB of NAR) "
            f"(target <= 20: {'ok' if per_gib <= 20 else 'MISSED'})")


def main() -> None:
    with cluster() as c:
        url = c.store_url()
        infos, requests = ingest(url, corpus_trees())
        print(ingest_line("corpus, one commit per tree", infos, requests))
        print(ingest_line("corpus, one batch for all seven", *ingest(c.store_url(), corpus_trees(), one_batch=True)))
        tree = incompressible_tree()
        print(ingest_line("512 MiB incompressible", *ingest(c.store_url(), [tree])))
        cached = f"{c.store_url()}&packs-cache={fresh_dir(WORK / 'packs-cache')}"
        print(ingest_line("512 MiB incompressible, packs-cache=", *ingest(cached, [tree])))
        with open_store(url) as store:
            served = 0
            for info in infos:
                served += sum(len(piece) for piece in api.dump(store, info.store_path))
            serve = sum(s3_packs(store).requests.values())
            serve_detail = dict(s3_packs(store).requests)
    print(f"object-storage requests per NAR served: {serve / len(infos):.1f} ({serve} requests {serve_detail} "
          f"for {len(infos)} NARs, {served / GiB:.3f} GiB)")


if __name__ == "__main__":
    main()
