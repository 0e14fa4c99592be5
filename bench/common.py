"""Shared pieces of the benchmarks: the corpus, timing, and a ratio line."""

from __future__ import annotations

import compileall
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SHARED = ROOT.parent / "shared"
CORPUS = Path(os.environ.get("CAIRN_CORPUS", ROOT / "bench" / "out" / "corpus"))
CAIRN = str(Path(sys.executable).parent / "cairn")
NIX_FLAGS = ["--extra-experimental-features", "nix-command"]


def compile_cairn() -> None:
    """Byte-compile Cairn as `pip install` does. The environment may set PYTHONDONTWRITEBYTECODE
    and the checkout is installed editable, so otherwise every timed `cairn` run would first
    compile its modules from source."""
    for package in ("castore", "store", "nar_bridge", "fuse"):
        compileall.compile_dir(ROOT / package, quiet=1)


compile_cairn()


def corpus_trees() -> list[Path]:
    """The seven package trees, built on first use by shared/corpus/make-corpus.sh."""
    trees = CORPUS / "trees"
    if not trees.is_dir() or len(list(trees.iterdir())) < 7:
        subprocess.run(["bash", str(SHARED / "corpus" / "make-corpus.sh"), str(CORPUS), sys.executable],
                       check=True)
    return sorted(p for p in trees.iterdir() if p.is_dir() and not p.name.endswith(".tmp"))


def timed(cmd: list[str], **kw) -> float:
    """Wall seconds of one run of a command (output discarded, failure raises)."""
    start = time.perf_counter()
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, **kw)
    return time.perf_counter() - start


def best_of(n: int, fn) -> float:
    return min(fn() for _ in range(n))


def fresh_dir(path: Path) -> Path:
    """An empty directory; the removal of the old one is synced first, so its deferred
    file-system work does not land on whichever command is timed next."""
    shutil.rmtree(path, ignore_errors=True)
    path.mkdir(parents=True)
    os.sync()
    return path


def disk_bytes(path: Path) -> int:
    """Bytes a directory really occupies: apparent size, but never more than allocated blocks
    (LMDB's map is sparse)."""
    total = 0
    for dirpath, _, files in os.walk(path):
        for f in files:
            st = os.lstat(os.path.join(dirpath, f))
            total += min(st.st_size, st.st_blocks * 512)
    return total


def ratio_line(what: str, cairn: float, peer: float, peer_name: str, target: float, unit: str = "s") -> str:
    r = cairn / peer if peer else float("inf")
    verdict = "ok" if r <= target else "MISSED"
    return (f"{what}: cairn {cairn:.3f} {unit} vs {peer_name} {peer:.3f} {unit} -> "
            f"ratio {r:.2f}x (target <= {target}x: {verdict})")


def compare_with_nix_add(cairn_verb: list[str], work: Path, target: float = 1.5) -> None:
    """Time `cairn VERB --store fresh TREE` against `nix-store --add` into a fresh store,
    per corpus tree and in total (best of 3 each)."""
    total_cairn = total_nix = 0.0
    for tree in corpus_trees():
        def nix() -> float:
            root = fresh_dir(work / "nix-root")
            return timed(["nix-store", "--store", f"local?root={root}", "--add", str(tree)])

        def cairn() -> float:
            store = fresh_dir(work / "cairn-store")
            return timed([CAIRN, *cairn_verb, "--store", f"local://{store}", str(tree)])

        n, c = best_of(3, nix), best_of(3, cairn)
        total_nix += n
        total_cairn += c
        print(ratio_line(f"{' '.join(cairn_verb)} {tree.name}", c, n, "nix-store --add", target))
    print(ratio_line(f"{' '.join(cairn_verb)} all seven trees", total_cairn, total_nix, "nix-store --add", target))
