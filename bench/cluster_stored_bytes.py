"""Stored bytes of the seven corpus trees (one `cairn import` each side) in the cluster, the sum
of the pack objects' sizes in the bucket, vs in the embedded store, the sum of its pack files.
Records (PostgreSQL rows, LMDB pages) are not counted on either side: they name the data, and
their size depends on each engine's page and row layout, not on Cairn.

Target: ratio within 5% (0.95x to 1.05x).
"""

from __future__ import annotations

import subprocess

from cluster_services import cluster, pack_file_bytes
from common import CAIRN, ROOT, corpus_trees, fresh_dir

WORK = ROOT / "bench" / "out" / "cluster-stored"
MiB = 1 << 20


def main() -> None:
    trees = [str(t) for t in corpus_trees()]
    embedded = fresh_dir(WORK / "embedded")
    subprocess.run([CAIRN, "import", "--store", f"local://{embedded}", *trees], check=True,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    with cluster() as c:
        url = c.store_url()
        subprocess.run([CAIRN, "import", "--store", url, *trees], check=True,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        objects = list(c.packs(url).list())
    in_bucket, in_files = sum(size for _, size in objects), pack_file_bytes(str(embedded))
    r = in_bucket / in_files
    print(f"stored bytes, seven trees: cluster {in_bucket / MiB:.2f} MiB in {len(objects)} pack objects vs "
          f"embedded local:// {in_files / MiB:.2f} MiB of pack files -> ratio {r:.3f}x "
          f"(target within 5%: {'ok' if abs(r - 1) <= 0.05 else 'MISSED'})")


if __name__ == "__main__":
    main()
