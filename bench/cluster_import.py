"""`cairn import` of the seven corpus trees (one command) into the cluster, PostgreSQL + S3 packs
on SeaweedFS, vs into the embedded store (`local://`: LMDB + pack files).

Each run imports into an empty store (a fresh database and bucket prefix, a fresh directory);
runs alternate between the two (the machine is shared, so both see the same conditions); best
of 3 wall times each. Target: ratio <= 1.5x.
"""

from __future__ import annotations

from cluster_services import cluster
from common import CAIRN, ROOT, corpus_trees, fresh_dir, ratio_line, timed

WORK = ROOT / "bench" / "out" / "cluster-import"
RUNS = 3


def main() -> None:
    trees = [str(t) for t in corpus_trees()]
    with cluster() as c:
        times = [(timed([CAIRN, "import", "--store", f"local://{fresh_dir(WORK / 'embedded')}", *trees]),
                  timed([CAIRN, "import", "--store", c.store_url(), *trees]))
                 for _ in range(RUNS)]
    embedded, clustered = (min(column) for column in zip(*times))
    print(ratio_line("cairn import, seven trees", clustered, embedded, "embedded local://", 1.5))
    print("  (every run, embedded / cluster: " + ", ".join(f"{e:.2f} / {k:.2f} s" for e, k in times) + ")")


if __name__ == "__main__":
    main()
