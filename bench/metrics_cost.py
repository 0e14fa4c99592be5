"""What metrics cost: 1000 narinfo GETs from nar-bridge with metrics (the default) vs the same
bridge started with `--no-metrics`, each over its own copy of the same store. Both write the
access log (to /dev/null), so the difference is the counting alone.

The GETs are bridge_narinfo.py's (distinct paths, one aiohttp client), sequential and 16 at a
time. Each round runs both bridges back to back (who goes first alternates), so the two see
the same load on a shared machine; halfway, both restart with the settings swapped. Two
figures per mode:
- wall time: best of ROUNDS each, and the median of the rounds' ratios;
- the bridge's CPU time for the GETs (every thread's, from /proc/PID/task/*/schedstat, in ns),
  summed over the rounds: what metrics cost the server, and far steadier than wall time when
  other work shares the cores.

Target: ratio <= 1.05x.
"""

from __future__ import annotations

import asyncio
import contextlib
import statistics
import subprocess
from pathlib import Path
from typing import Iterator

from bridge_copy import WORK
from bridge_narinfo import get_narinfos, tiny_trees
from common import CAIRN, add_to_nix, free_port, fresh_dir, ratio_line, wait_until_up

ROUNDS = 16
"""Per mode and setting, half with each bridge process and store (see main)."""
TARGET = 1.05
FLAGS = {"on": (), "off": ("--no-metrics",)}


@contextlib.contextmanager
def bridge(paths: list[str], name: str, *args: str) -> Iterator[tuple[str, int]]:
    """A bridge over a fresh store holding `paths`: its URL and process id."""
    store = fresh_dir(WORK / f"metrics-cost-{name}")
    subprocess.run([CAIRN, "copy", "--store", f"local://{store}", *paths], check=True,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{free_port()}"
    proc = subprocess.Popen([CAIRN, "nar-bridge", "--listen", url[len("http://"):], "--store", f"local://{store}",
                             *args], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_until_up(url, proc)
        yield url, proc.pid
    finally:
        proc.terminate()
        proc.wait(30)


def cpu_seconds(pid: int) -> float:
    """CPU time of every thread of the process so far."""
    return sum(int((task / "schedstat").read_text().split()[0])
               for task in Path(f"/proc/{pid}/task").iterdir()) / 1e9


def timed(url: str, pid: int, hash_parts: list[str], concurrency: int) -> tuple[float, float]:
    """Wall and server CPU seconds of the GETs."""
    before = cpu_seconds(pid)
    wall = asyncio.run(get_narinfos(url, hash_parts, concurrency))
    return wall, cpu_seconds(pid) - before


MODES = ((1, "sequential"), (16, "16 at a time"))


def main() -> None:
    paths = add_to_nix(tiny_trees())
    hash_parts = [p.rsplit("/", 1)[1][:32] for p in paths]
    runs: dict[tuple[int, str], list[tuple[float, float]]] = {(c, k): [] for c, _ in MODES for k in ("on", "off")}
    for first, second in (("on", "off"), ("off", "on")):  # two identical bridges differ by ~10% in
        # CPU by the order they start in (an A/A run shows it): each setting gets each place once
        with bridge(paths, "first", *FLAGS[first]) as one, bridge(paths, "second", *FLAGS[second]) as two:
            servers = {first: one, second: two}
            for concurrency, _ in MODES:
                for n in range(ROUNDS // 2):
                    for name in ("on", "off")[::1 if n % 2 == 0 else -1]:
                        runs[concurrency, name].append(timed(*servers[name], hash_parts, concurrency))
    for concurrency, what in MODES:
        (wall_on, cpu_on), (wall_off, cpu_off) = (list(zip(*runs[concurrency, k])) for k in ("on", "off"))
        rounds = len(wall_on)
        print(ratio_line(f"1000 narinfo GETs, {what}: wall, best of {rounds}", min(wall_on), min(wall_off),
                         "--no-metrics", TARGET))
        ratios = sorted(a / b for a, b in zip(wall_on, wall_off))
        print(f"  wall, median of the {rounds} rounds' ratios: {statistics.median(ratios):.3f}x "
              f"(quartiles {ratios[rounds // 4]:.3f}x - {ratios[3 * rounds // 4]:.3f}x)")
        print(ratio_line(f"  bridge CPU, {rounds} x 1000 GETs", sum(cpu_on), sum(cpu_off), "--no-metrics", TARGET))


if __name__ == "__main__":
    main()
