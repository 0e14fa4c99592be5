"""Fixtures for the Nix-format tests: the archived cache.nixos.org narinfos and their key."""

from __future__ import annotations

import pytest
import zstandard

from tests.conftest import TESTDATA

CACHE_NIXOS_ORG_KEY = "cache.nixos.org-1:6NCHdD59X431o0gWypbMrAURkbJ16ZPMQFGspcDShjY="


@pytest.fixture(scope="session")
def narinfo_texts() -> list[str]:
    """The 978 archived narinfos, each exactly as served (ending in a newline)."""
    with open(TESTDATA / "cache-nixos-org-narinfos.zst", "rb") as f:
        text = zstandard.ZstdDecompressor().stream_reader(f).read().decode()
    texts = [block + "\n" for block in text.split("\n\n") if block]
    assert len(texts) == 978
    return texts
