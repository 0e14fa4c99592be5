"""SIGKILL during `cairn gc`, at random moments: nothing kept is lost, and the next GC finishes.

Each round copies one store (a sparse pack to rewrite, a dead pack to delete, dead paths to
sweep), starts `cairn gc --grace 0` and kills it after a random delay within a clean run's
length (aiming earlier after a kill that came too late, and running more rounds until a third
of ROUNDS landed while GC worked: timings wander on a busy machine); then `cairn verify --all`
must pass, every kept path must dump as before, and a second GC must leave the store exactly
as a clean GC does.
"""

from __future__ import annotations

import random
import shutil
import signal
import subprocess
import time
from pathlib import Path

import pytest

from castore.local.sweep import RETIRED, UNNAMED
from store import api
from store.gc.collect import STATE, collect
from store.gc.engine import engine_of
from store.gc.roots import add_root
from store.pathinfo.local import PATHINFO
from store.url import open_store
from tests.store.gc_tools import CAIRN, cairn
from tests.store.test_gc import packs_of, tree

ROUNDS = 30


def make_store(tmp_path: Path) -> tuple[Path, dict[str, bytes], list[str]]:
    """A store, its kept paths' NARs, and its unkept paths."""
    directory = tmp_path / "template"
    with open_store(f"local://{directory}") as store:
        engine = engine_of(store)
        with engine.batch():  # one pack, mostly dead: rewritten
            kept = [api.import_path(store, tree(tmp_path / "k1", "k1", files=40))]
            gone = [api.import_path(store, tree(tmp_path / "g1", "g1", files=4000, size=1500))]
        gone.append(api.import_path(store, tree(tmp_path / "g2", "g2", files=60)))  # a dead pack: deleted
        kept.append(api.import_path(store, tree(tmp_path / "k2", "k2", files=60)))  # a live pack: kept as is
        add_root(engine, "kept", [i.store_path for i in kept])
        nars = {i.store_path.absolute: b"".join(api.dump(store, i.store_path)) for i in kept}
    return directory, nars, [i.store_path.absolute for i in gone]


def state(directory: Path) -> tuple[list[str], list, list]:
    """Packs, and GC's bookkeeping of unfinished work."""
    with open_store(f"local://{directory}") as store:
        engine = engine_of(store)
        return (sorted(packs_of(store)), list(engine.metadata.items(UNNAMED)),
                list(engine.metadata.items(RETIRED)))


def progress(directory: Path, gone: list[str]) -> str:
    """How far a killed GC got: "before" any change, "during", or "finished"."""
    with open_store(f"local://{directory}") as store:
        meta = engine_of(store).metadata
        if meta.get(STATE, b"last") is not None:
            return "finished"
        swept = any(meta.get(PATHINFO, api.parse_store_path(p).digest) is None for p in gone)
        return "during" if swept else "before"


@pytest.mark.slow
def test_sigkill_during_gc_loses_nothing_kept_and_the_next_gc_finishes(tmp_path: Path) -> None:
    template, nars, gone = make_store(tmp_path)
    clean = tmp_path / "clean"
    shutil.copytree(template, clean)
    started = time.monotonic()
    cairn("gc", "--store", f"local://{clean}", "--grace", "0")
    length = time.monotonic() - started
    shutil.copytree(template, tmp_path / "in-process")
    with open_store(f"local://{tmp_path}/in-process") as store:
        started = time.monotonic()
        collect(store, grace=0)
        startup = length - (time.monotonic() - started)  # kills before GC begins prove little: aim after it
    expected = state(clean)
    assert expected[1:] == ([], []) and len(expected[0]) == 2  # the live pack, and the rewritten one

    rng = random.Random(13)
    landed = {"before": 0, "during": 0, "finished": 0}
    n = 0
    while n < ROUNDS or (landed["during"] < ROUNDS // 3 and n < 3 * ROUNDS):
        store = tmp_path / f"round-{n}"
        shutil.copytree(template, store)
        url = f"local://{store}"
        proc = subprocess.Popen([CAIRN, "gc", "--store", url, "--grace", "0"], stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL)
        time.sleep(rng.uniform(0.8 * startup, length))
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        landed[where := progress(store, gone)] += 1
        if where == "finished":  # a busy machine made the clean run slower than this one: aim earlier,
            length *= 0.9  # below the start-up it measured too if need be (a slow first run inflates both)
            startup = min(startup, length)
        assert cairn("verify", "--store", url, "--all", check=False).returncode == 0, f"round {n}"
        for path, nar in nars.items():
            assert cairn("dump", "--store", url, path).stdout == nar, f"round {n}: {path}"
        cairn("gc", "--store", url, "--grace", "0")
        after = state(store)
        assert after[1:] == ([], []) and len(after[0]) == 2, f"round {n}: {after}"
        for path in gone:
            assert cairn("path-info", "--store", url, path, check=False).returncode != 0
        for path, nar in nars.items():
            assert cairn("dump", "--store", url, path).stdout == nar, f"round {n}: {path}"
        shutil.rmtree(store)
        n += 1
    print(f"kills: {landed}")
    assert landed["during"] >= ROUNDS // 3, f"too few kills landed while GC worked: {landed}"
