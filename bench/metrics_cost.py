"""What metrics cost: 1000 narinfo GETs from nar-bridge with metrics (the default) vs the same
bridge started with `--no-metrics`, each over its own copy of the same store. Both write the
access log (to /dev/null), so the difference is the counting alone.

The GETs are bridge_narinfo.py's (distinct paths, one aiohttp client), sequential and 16 at a
time. Each round runs both bridges back to back (who goes first alternates), so the two see
the same load on a shared machine. Two figures per mode:
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

ROUNDS = 15
TARGET = 1.05


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


def main() -> None:
    paths = add_to_nix(tiny_trees())
    hash_parts = [p.rsplit("/", 1)[1][:32] for p in paths]
    with bridge(paths, "on") as on, bridge(paths, "off", "--no-metrics") as off:
        for concurrency, what in ((1, "sequential"), (16, "16 at a time")):
            runs: dict[str, list[tuple[float, float]]] = {"on": [], "off": []}
            for n in range(ROUNDS):
                for name, server in (("on", on), ("off", off))[::1 if n % 2 == 0 else -1]:
                    runs[name].append(timed(*server, hash_parts, concurrency))
            (wall_on, cpu_on), (wall_off, cpu_off) = (list(zip(*runs[k])) for k in ("on", "off"))
            print(ratio_line(f"1000 narinfo GETs, {what}: wall, best of {ROUNDS}", min(wall_on), min(wall_off),
                             "--no-metrics", TARGET))
            ratios = sorted(a / b for a, b in zip(wall_on, wall_off))
            print(f"  wall, median of the {ROUNDS} rounds' ratios: {statistics.median(ratios):.3f}x "
                  f"(quartiles {ratios[ROUNDS // 4]:.3f}x - {ratios[3 * ROUNDS // 4]:.3f}x)")
            print(ratio_line(f"  bridge CPU, {ROUNDS} x 1000 GETs", sum(cpu_on), sum(cpu_off), "--no-metrics",
                             TARGET))


if __name__ == "__main__":
    main()
