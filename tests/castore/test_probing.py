"""Bounded health probes: a hung store costs one probe thread however many checks arrive, each
check answers within the deadline, and the next check after the store is back succeeds."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

import pytest

from castore.errors import BackendError
from castore.probing import BoundedProbe


def test_checks_while_the_store_hangs_share_one_probe_and_time_out() -> None:
    release = threading.Event()
    calls = []

    def hanging() -> None:
        calls.append(1)
        release.wait()

    probe = BoundedProbe(hanging, seconds=0.2)
    with ThreadPoolExecutor(16) as pool:
        outcomes = list(pool.map(lambda _: _outcome(probe), range(32)))
    assert outcomes == ["timeout"] * 32
    assert len(calls) == 1
    release.set()
    probe()  # the store is back: the probe under way answered, the next one runs afresh
    assert len(calls) in (1, 2)


def test_a_failing_store_raises_its_error_and_a_recovered_one_answers() -> None:
    state = {"down": True}

    def probing() -> None:
        if state["down"]:
            raise BackendError("metadata store unreachable")

    probe = BoundedProbe(probing, seconds=5)
    with pytest.raises(BackendError, match="unreachable"):
        probe()
    state["down"] = False
    probe()


def _outcome(probe: BoundedProbe) -> str:
    try:
        probe()
    except TimeoutError:
        return "timeout"
    return "ok"
