"""Storage: bytes Cairn's local store holds for all seven trees vs the xz binary cache
(`nix copy --to file://DIR`, default xz compression) of the same store paths.

Target: ratio <= 0.70x.
"""

from __future__ import annotations

import subprocess

from common import CAIRN, NIX_FLAGS, ROOT, corpus_trees, disk_bytes, fresh_dir, ratio_line

WORK = ROOT / "bench" / "out" / "storage"


def main() -> None:
    trees = corpus_trees()
    store = fresh_dir(WORK / "cairn-store")
    for tree in trees:
        subprocess.run([CAIRN, "castore", "import", "--store", f"local://{store}", str(tree)],
                       check=True, stdout=subprocess.DEVNULL)
    paths = [subprocess.run(["nix-store", "--add", str(t)], check=True, capture_output=True,
                            text=True).stdout.strip() for t in trees]
    cache = fresh_dir(WORK / "xz-cache")
    subprocess.run(["nix", *NIX_FLAGS, "copy", "--to", f"file://{cache}", *paths], check=True)
    cairn, xz = disk_bytes(store), disk_bytes(cache)
    raw = sum(disk_bytes(t) for t in trees)
    print(f"raw trees: {raw / 1e6:.1f} MB")
    print(ratio_line("stored bytes, seven trees", cairn / 1e6, xz / 1e6, "xz binary cache", 0.70, "MB"))


if __name__ == "__main__":
    main()
