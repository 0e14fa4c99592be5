"""Object-storage requests per GiB ingested and per NAR served, on the cluster (PostgreSQL + S3
packs on SeaweedFS).

Counted by the pack store's own counter (`S3PackStore.requests`: one per PUT, ranged GET, HEAD,
LIST page sent; obstore's internal retries are not seen), so both steps run in this process
through `store.api`: `import_path` of the seven corpus trees, one commit each as `cairn import`
makes, per GiB of NAR ingested; then `dump` of each path (nar-bridge renders a NAR the same way,
through store.nar's layout) from a freshly opened store, so no process cache holds a chunk.

Targets: at most 20 requests per GiB ingested; none for per NAR served.
"""

from __future__ import annotations

from cluster_services import cluster, s3_packs
from common import corpus_trees

from store import api
from store.url import open_store

GiB = 1 << 30


def main() -> None:
    with cluster() as c:
        url = c.store_url()
        with open_store(url) as store:
            infos = [api.import_path(store, tree) for tree in corpus_trees()]
            ingest = sum(s3_packs(store).requests.values())
            detail = dict(s3_packs(store).requests)
        ingested = sum(info.nar_size for info in infos)
        with open_store(url) as store:
            served = 0
            for info in infos:
                served += sum(len(piece) for piece in api.dump(store, info.store_path))
            serve = sum(s3_packs(store).requests.values())
            serve_detail = dict(s3_packs(store).requests)
    per_gib = ingest / (ingested / GiB)
    print(f"object-storage requests per GiB ingested: {per_gib:.1f} ({ingest} requests {detail} for "
          f"{ingested / GiB:.3f} GiB of NAR in {len(infos)} imports) (target <= 20: "
          f"{'ok' if per_gib <= 20 else 'MISSED'})")
    print(f"object-storage requests per NAR served: {serve / len(infos):.1f} ({serve} requests {serve_detail} "
          f"for {len(infos)} NARs, {served / GiB:.3f} GiB)")


if __name__ == "__main__":
    main()
