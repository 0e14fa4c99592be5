"""`cairn gc`: what it gives back, how fast, in how much memory.

Imports the seven corpus trees into one store, roots four, and collects (grace 0: nothing else
writes). Figures: the store's bytes on disk after GC against a fresh store into which only the
four were imported (target: within 10%); GC seconds per GiB stored before it; the GC process's
peak RSS (target: below 300 MB). The corpus stores in about 20 MiB, where a GC's fixed cost
hides its rate, so the rate and the memory are also measured on ~0.9 GiB of synthetic data.
"""

from __future__ import annotations

import os
import random
import shutil
import subprocess
import sys
import time
from pathlib import Path

from common import CAIRN, ROOT, corpus_trees, disk_bytes, fresh_dir

KEPT = ("Django-5.0", "Django-5.1", "numpy-2.1.0", "numpy-2.1.2")
"""Four of the seven: the others are stored as deltas against them, so GC keeps shared bases."""


def cairn(*args: str) -> str:
    return subprocess.run([CAIRN, *args], check=True, capture_output=True, text=True).stdout


def gc_run(store: Path) -> tuple[str, float, int]:
    """`cairn gc --grace 0`: its report, wall seconds, and its own peak RSS in bytes."""
    start = time.perf_counter()
    proc = subprocess.Popen([CAIRN, "gc", "--store", f"local://{store}", "--grace", "0"], stdout=subprocess.PIPE,
                            text=True)
    report = proc.stdout.read()
    _, status, usage = os.wait4(proc.pid, 0)  # this child's own peak, not the imports'
    assert status == 0, report
    return report, time.perf_counter() - start, usage.ru_maxrss * 1024


def corpus(work: Path) -> None:
    trees = corpus_trees()
    kept = [t for t in trees if t.name in KEPT]
    assert len(kept) == 4, [t.name for t in trees]
    full, only = fresh_dir(work / "all"), fresh_dir(work / "four")
    paths = dict(zip(trees, cairn("import", "--store", f"local://{full}", *map(str, trees)).split()))
    cairn("import", "--store", f"local://{only}", *map(str, kept))
    cairn("root", "add", "--store", f"local://{full}", "four", *(paths[t] for t in kept))
    before = disk_bytes(full)
    report, seconds, peak = gc_run(full)
    after, fresh = disk_bytes(full), disk_bytes(only)
    print(report.strip())
    print(f"corpus: store on disk {before / 2**20:.1f} MiB before GC, {after / 2**20:.1f} MiB after; "
          f"a fresh store of the four: {fresh / 2**20:.1f} MiB")
    print(f"corpus: after GC / fresh four = {after / fresh:.3f} (target <= 1.10)")
    print(f"corpus: GC {seconds:.2f} s for {before / 2**30:.3f} GiB; peak RSS {peak / 2**20:.0f} MiB (target < 300)")


def synthetic_tree(root: Path, seed: int) -> Path:
    """About 0.46 GiB that neither compresses nor deduplicates: 25,000 small files, four of 100 MiB."""
    rng = random.Random(seed)
    for d in range(100):
        (root / f"d{d}").mkdir(parents=True)
        for f in range(250):
            (root / f"d{d}" / f"f{f}").write_bytes(rng.randbytes(rng.randint(1024, 4096)))
    for b in range(4):
        with open(root / f"big{b}", "wb") as out:
            for _ in range(100):
                out.write(rng.randbytes(1 << 20))
    return root


def synthetic(work: Path) -> None:
    """Two such trees, one rooted: GC time per GiB and peak RSS at a size where they show."""
    store = fresh_dir(work / "scale")
    trees = [synthetic_tree(fresh_dir(work / f"tree-{n}"), n) for n in range(2)]
    paths = cairn("import", "--store", f"local://{store}", *map(str, trees)).split()
    for tree in trees:
        shutil.rmtree(tree)
    cairn("root", "add", "--store", f"local://{store}", "one", paths[0])
    before = disk_bytes(store)
    report, seconds, peak = gc_run(store)
    print(report.strip())
    print(f"synthetic: GC of {before / 2**30:.2f} GiB stored ({disk_bytes(store) / 2**30:.2f} GiB after) in "
          f"{seconds:.1f} s = {seconds / (before / 2**30):.1f} s per GiB stored; peak RSS {peak / 2**20:.0f} MiB")


CLUSTER = """
import sys, time
from store import api
from store.gc.collect import collect
from store.gc.engine import engine_of
from store.gc.roots import add_root
from store.url import open_store

url, packs, verb, *trees = sys.argv[1:]
with open_store(f"{url}&packs=file://{packs}") as store:
    if verb == "import":
        infos = [api.import_path(store, tree) for tree in trees]
        add_root(engine_of(store), "one", [infos[0].store_path])
    else:
        start = time.perf_counter()
        report = collect(store, grace=0)
        print(time.perf_counter() - start, report.before, report.after)
"""


def cluster(work: Path) -> None:
    """The same on the engine over PostgreSQL (a private durable server) with packs in files:
    the scale-out store's metadata; seconds of the GC itself, peak RSS of its process."""
    sys.path.insert(0, str(ROOT))
    from tests.services.postgres import running_postgres

    packs = fresh_dir(work / "cluster-packs")
    trees = [synthetic_tree(fresh_dir(work / f"tree-{n}"), n) for n in range(2)]
    with running_postgres(durable=True) as server:
        url = server.create_database()
        env = {**os.environ, "PYTHONPATH": str(ROOT)}
        subprocess.run([sys.executable, "-c", CLUSTER, url, str(packs), "import", *map(str, trees)], check=True,
                       env=env)
        for tree in trees:
            shutil.rmtree(tree)
        proc = subprocess.Popen([sys.executable, "-c", CLUSTER, url, str(packs), "gc"], stdout=subprocess.PIPE,
                                text=True, env=env)
        out = proc.stdout.read()
        _, status, usage = os.wait4(proc.pid, 0)
        assert status == 0, out
    seconds, before, after = (float(x) for x in out.split())
    print(f"cluster (PostgreSQL metadata, packs in files): GC of {before / 2**30:.2f} GiB stored "
          f"({after / 2**30:.2f} GiB after) in {seconds:.1f} s = {seconds / (before / 2**30):.1f} s per GiB; "
          f"peak RSS {usage.ru_maxrss / 1024:.0f} MiB")


if __name__ == "__main__":
    out = ROOT / "bench" / "out" / "gc"
    parts = sys.argv[1:] or ["corpus", "synthetic", "cluster"]
    for part in parts:
        {"corpus": corpus, "synthetic": synthetic, "cluster": cluster}[part](out)
