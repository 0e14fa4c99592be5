"""Writers into the cluster killed with SIGKILL at random moments: what they acknowledged
stays whole, no record names a missing object, and an interrupted copy resumes.

A commit puts its packs first (durable on return) and then commits, in one PostgreSQL
transaction, the records naming them; a kill between the two leaves packs no record names
(garbage for GC), never a record without its pack. Each test prints its random seed."""

from __future__ import annotations

import random
import signal
import subprocess
import time

import pytest

from store import api
from store.url import open_store
from tests.cluster.checks import overlapping_tree, walk_objects

KILLS = 20


def killed_after(process: subprocess.Popen, delay: float) -> tuple[bytes, bytes]:
    """SIGKILL `process` after `delay` seconds (unless it exited); its stdout and stderr."""
    try:
        return process.communicate(timeout=delay)
    except subprocess.TimeoutExpired:
        process.send_signal(signal.SIGKILL)
        return process.communicate()


@pytest.mark.slow
def test_writers_killed_at_random_leave_acknowledged_paths_whole(cluster, tmp_path, monkeypatch):
    monkeypatch.setenv("PYTHONUNBUFFERED", "1")  # a path is printed the moment its commit returns
    seed = random.randrange(1 << 32)
    rng = random.Random(seed)
    shared = [overlapping_tree(tmp_path / f"shared-{n}", f"shared-{n}") for n in range(3)]

    def writer(n: int) -> subprocess.Popen:
        """`cairn import` of a tree of its own and two shared ones, in a random order. An own
        tree larger than a pack fills one before its path commits: a kill after that put and
        before the commit leaves a pack no record names."""
        own = overlapping_tree(tmp_path / f"own-{n}", f"own-{n}", files=rng.randrange(1, 200),
                               own_bytes=rng.randrange(1 << 20, 48 << 20))
        trees = [own, *rng.sample(shared, 2)]
        rng.shuffle(trees)
        return cluster.popen("import", "--store", cluster.store, *map(str, trees),
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE)

    acknowledged: set[str] = set()
    whole = 0.0  # how long the last writer that finished took: kills land anywhere in such a run
    killed = attempts = 0
    while killed < KILLS:
        attempts += 1
        assert attempts <= 3 * KILLS, f"seed {seed}: only {killed} of {attempts} writers died before finishing"
        process, started = writer(attempts), time.monotonic()
        out, err = killed_after(process, rng.uniform(0.3, whole)) if whole else process.communicate()
        if process.returncode == -signal.SIGKILL:
            killed += 1
        else:
            assert process.returncode == 0, err.decode()
            whole = time.monotonic() - started
        acknowledged.update(out.decode().split())
    print(f"seed {seed}: {killed} of {attempts} writers killed, {len(acknowledged)} paths acknowledged")

    verified = cluster.cairn("verify", "--all", "--store", cluster.store)
    report = verified.stderr.decode()
    assert verified.returncode == 0, f"seed {seed}: {verified.stdout.decode()}{report}"
    assert "0 problems" in report and "of chunks" in report, report
    with open_store(cluster.store) as store:
        for path in acknowledged:
            assert store.pathinfo.get(api.parse_store_path(path).digest) is not None, f"seed {seed}: {path} lost"
    objects = walk_objects(cluster.store)
    assert objects.missing == [], f"seed {seed}"
    print(f"{objects.unreferenced} packs no record names (put by a writer killed before its commit)")


@pytest.mark.slow
def test_a_copy_into_the_cluster_killed_and_resumed_copies_everything_once(cluster, tmp_path, monkeypatch):
    monkeypatch.setenv("PYTHONUNBUFFERED", "1")  # each path is printed once it is copied
    source = f"local://{tmp_path}/source"
    with open_store(source) as store:
        paths = [api.import_path(store, overlapping_tree(tmp_path / f"tree-{n}", f"tree-{n}", own_bytes=8 << 20))
                 .store_path for n in range(6)]
    seed = random.randrange(1 << 32)
    rng = random.Random(seed)
    first = cluster.popen("copy", "--from", source, "--to", cluster.store, "--all",
                          stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    done = rng.randrange(len(paths) - 2)  # killed while copying one of the last paths but one, or before
    copied = set()
    for _ in range(done):
        line = first.stdout.readline()
        assert line, "the copy ended early"
        copied.add(line.decode().strip())
    time.sleep(rng.uniform(0, 0.02))  # two or more 8 MiB paths still to go take longer than this
    first.send_signal(signal.SIGKILL)
    first.communicate()
    assert first.returncode == -signal.SIGKILL, f"seed {seed}: the copy finished before its kill"
    resumed = cluster.cairn("copy", "--from", source, "--to", cluster.store, "--all")
    assert resumed.returncode == 0, resumed.stderr.decode()
    assert copied.isdisjoint(resumed.stdout.decode().split()), f"seed {seed}: the resumed copy copied again"
    with open_store(source) as src, open_store(cluster.store) as dest:
        for path in paths:
            assert b"".join(api.dump(dest, path)) == b"".join(api.dump(src, path)), f"seed {seed}: {path}"
    again = cluster.cairn("copy", "--from", source, "--to", cluster.store, "--all")
    assert again.returncode == 0 and again.stdout == b"", again.stderr.decode()
    assert "copied 0 paths" in again.stderr.decode() and f"{len(paths)} already there" in again.stderr.decode()
    assert walk_objects(cluster.store).missing == []
