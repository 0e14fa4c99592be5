"""`cairn import` (NAR hash, store path and PathInfo too) vs `nix-store --add`, per corpus tree.

Each side adds into a fresh store per run; best of 3 wall times. Target: ratio <= 1.5x.
"""

from __future__ import annotations

from common import ROOT, compare_with_nix_add

if __name__ == "__main__":
    compare_with_nix_add(["import"], ROOT / "bench" / "out" / "store-import")
