"""Hashing through the mount: `nix hash path` of every corpus tree through `cairn mount` vs the original trees.

The seven trees are imported into a fresh local store once. Each round starts a fresh mount
(a new process: empty caches, and a new mount, so the kernel caches nothing of it either)
and hashes every tree through it once; the same command runs on the original trees, which
the page cache holds. Best of 3 rounds; every hash is checked against the original's.
Target: ratio <= 2.5x.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import time
from pathlib import Path
from typing import Iterator

from common import CAIRN, NIX_FLAGS, ROOT, corpus_trees, fresh_dir, ratio_line

WORK = ROOT / "bench" / "out" / "fuse"
ROUNDS = 3


@contextlib.contextmanager
def serving(command: list[str], mountpoint: Path) -> Iterator[Path]:
    """`command` mounting a file system at `mountpoint` (it may take a while to load), unmounted
    with fusermount3 -u when the block ends, which also ends the command."""
    mountpoint.mkdir(parents=True, exist_ok=True)
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 120
        while not os.path.ismount(mountpoint):
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"{command[0]} did not mount {mountpoint}")
            time.sleep(0.05)
        yield mountpoint
    finally:
        subprocess.run(["fusermount3", "-u", str(mountpoint)], check=False, capture_output=True)
        process.wait(30)


def mounted(store: str, mountpoint: Path) -> contextlib.AbstractContextManager[Path]:
    """A fresh `cairn mount` of `store`."""
    return serving([CAIRN, "mount", str(mountpoint), "--store", store], mountpoint)


def import_corpus(trees: list[Path]) -> tuple[str, list[str]]:
    """A fresh local store holding the trees; its URL and the store path basenames, in order."""
    store = f"local://{fresh_dir(WORK / 'store')}"
    printed = subprocess.run([CAIRN, "import", "--store", store, *map(str, trees)],
                             check=True, capture_output=True, text=True).stdout.split()
    return store, [os.path.basename(p) for p in printed]


def hash_path(path: Path) -> tuple[float, str]:
    """Wall seconds and output of `nix hash path PATH`."""
    start = time.perf_counter()
    out = subprocess.run(["nix", *NIX_FLAGS, "hash", "path", str(path)],
                         check=True, capture_output=True, text=True).stdout.strip()
    return time.perf_counter() - start, out


def main() -> None:
    trees = corpus_trees()
    store, basenames = import_corpus(trees)
    expected = {t: hash_path(t)[1] for t in trees}
    best_native = {t: float("inf") for t in trees}
    best_mounted = dict(best_native)
    native_totals, mounted_totals = [], []
    for _ in range(ROUNDS):
        native_totals.append(0.0)
        for tree in trees:
            seconds, _ = hash_path(tree)
            best_native[tree] = min(best_native[tree], seconds)
            native_totals[-1] += seconds
        mounted_totals.append(0.0)
        with mounted(store, WORK / "mnt") as mountpoint:
            for tree, basename in zip(trees, basenames):
                seconds, got = hash_path(mountpoint / basename)
                if got != expected[tree]:
                    raise AssertionError(f"{basename}: {got} through the mount, {expected[tree]} natively")
                best_mounted[tree] = min(best_mounted[tree], seconds)
                mounted_totals[-1] += seconds
    for tree in trees:
        print(ratio_line(f"nix hash path {tree.name}", best_mounted[tree], best_native[tree],
                         "original tree", 2.5))
    print(ratio_line("nix hash path, all seven trees (fresh mount)", min(mounted_totals), min(native_totals),
                     "original trees", 2.5))


if __name__ == "__main__":
    main()
