"""What the daemon's admission checks (store/pathinfo/checked.py) cost its writers: `cairn import`
of corpus trees into a daemon (CalculateNAR, then Put: the check finds the NAR cached) and
`cairn copy --all` into it (no CalculateNAR first: the daemon renders each NAR once to check it).

The peer is the same daemon serving its path infos unchecked, started the same way; each side
writes into a fresh store per run, alternating; best of 3 wall times.
"""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

from common import CAIRN, ROOT, corpus_trees, fresh_dir, ratio_line, timed

WORK = ROOT / "bench" / "out" / "daemon-admission"
SERVE = """
import sys
from castore.grpc_serve import run_daemon
from castore.grpc_server import castore_services
from store.grpc_server import daemon_services, pathinfo_services
from store.url import open_store
checked, url, store_url = sys.argv[1] == "checked", sys.argv[2], sys.argv[3]
with open_store(store_url) as store:
    services = daemon_services(store) if checked else [
        castore_services(store.castore.blobs, store.castore.directories), pathinfo_services(store.pathinfo, store.castore)]
    sys.exit(run_daemon(url, services))
"""


def run(variant: str, trees: list[Path], source: Path, verb: str) -> float:
    work = fresh_dir(WORK / variant)
    url = f"grpc+unix://{work}/d.sock"
    daemon = subprocess.Popen([sys.executable, "-c", SERVE, variant, url, f"local://{work}/store"], cwd=ROOT)
    try:
        while not (work / "d.sock").exists():
            time.sleep(0.05)
        if verb == "import":
            return timed([CAIRN, "import", "--store", url, *map(str, trees)])
        return timed([CAIRN, "copy", "--from", f"local://{source}", "--to", url, "--all"])
    finally:
        daemon.terminate()
        daemon.wait()


def main() -> None:
    trees = [t for t in corpus_trees() if t.name in ("Django-5.0", "numpy-2.1.0")]
    source = fresh_dir(WORK / "source")
    subprocess.run([CAIRN, "import", "--store", f"local://{source}", *map(str, trees)], check=True,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    for verb in ("import", "copy"):
        times: dict[str, list[float]] = {"checked": [], "unchecked": []}
        for round in range(3):
            for variant in (("checked", "unchecked") if round % 2 == 0 else ("unchecked", "checked")):
                times[variant].append(run(variant, trees, source, verb))
        print(ratio_line(f"cairn {verb} of {len(trees)} trees into a daemon, admission checked",
                         min(times["checked"]), min(times["unchecked"]), "unchecked", None), flush=True)


if __name__ == "__main__":
    main()
