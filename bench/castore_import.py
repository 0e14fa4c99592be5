"""Import speed: `cairn castore import` of each corpus tree vs `nix-store --add` (C++ Nix).

Each side imports into a fresh store per run; best of 3 wall times. Target: ratio <= 1.5x.
"""

from __future__ import annotations

from common import ROOT, compare_with_nix_add

if __name__ == "__main__":
    compare_with_nix_add(["castore", "import"], ROOT / "bench" / "out" / "castore-import")
