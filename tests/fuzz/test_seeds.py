"""Every checked-in fuzz seed (and every crash the fuzzer once found, kept as a seed) replays clean."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.fuzz.targets import TARGETS

SEEDS = Path(__file__).parent / "seeds"
CASES = [(name, path) for name in TARGETS for path in sorted((SEEDS / name).glob("*"))]


def test_every_target_has_seeds() -> None:
    assert {name for name, _ in CASES} == set(TARGETS)


@pytest.mark.parametrize("name,path", CASES, ids=[f"{n}-{p.name}" for n, p in CASES])
def test_seed_replays_clean(name: str, path: Path) -> None:
    TARGETS[name](path.read_bytes())
