"""`cairn gc` between real processes: nix-built closures, nar-bridge serving throughout, an
import and a `nix copy --to` upload running while GC does; dumps compared with `nix-store --dump`."""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path

import pytest

from nar_bridge.bridge import RECENT_SECONDS
from tests.nar_bridge.conftest import Bridge
from tests.store.gc_tools import age, cairn, disk_bytes
from tests.store.nixtool import build_closure, interop, nix
from tests.store.test_gc import tree


def closure(directory: Path, tag: str) -> tuple[str, list[str]]:
    top, paths = build_closure(directory, f'''
        dep = sh "gc-{tag}-dep" "echo dep-{tag}-{os.getpid()} > $out";
        mid = sh "gc-{tag}-mid" "/bin/mkdir $out; echo ${{dep}} > $out/dep; /bin/ln -s ${{dep}} $out/link;
                                 /bin/dd if=/dev/urandom of=$out/blob bs=1M count=2 2>/dev/null";''',
        f'sh "gc-{tag}-top" "/bin/mkdir -p $out/bin; echo ${{mid}} > $out/bin/mid; echo $out > $out/self"')
    assert len(paths) == 3
    return top, paths


@pytest.fixture(scope="module")
def closures(tmp_path_factory) -> dict[str, tuple[str, list[str]]]:
    return {tag: closure(tmp_path_factory.mktemp(tag), tag) for tag in ("kept", "gone")}


def narinfo_status(bridge: Bridge, path: str) -> int:
    return bridge.get(f"/{Path(path).name[:32]}.narinfo").status


def soon_404(bridge: Bridge, path: str) -> bool:
    """Whether the bridge answers 404 once the narinfos it answered lately expire (RECENT_SECONDS)."""
    deadline = time.monotonic() + RECENT_SECONDS + 5
    while narinfo_status(bridge, path) != 404:
        if time.monotonic() > deadline:
            return False
        time.sleep(0.5)
    return True


def assert_dumps_like_nix(url: str, paths: list[str]) -> None:
    for path in paths:
        assert cairn("dump", "--store", url, path).stdout == nix("nix-store", "--dump", path), path


@interop
def test_gc_keeps_a_rooted_closure_byte_identical_and_frees_the_unrooted_one(closures, tmp_path: Path) -> None:
    url = f"local://{tmp_path}/store"
    (kept_top, kept), (gone_top, gone) = closures["kept"], closures["gone"]
    cairn("copy", "--store", url, kept_top, gone_top)
    cairn("root", "add", "--store", url, "app", kept_top)
    bridge = Bridge(url, [], tmp_path / "bridge.log").start()
    try:
        assert all(narinfo_status(bridge, p) == 200 for p in kept + gone)
        before = disk_bytes(tmp_path / "store")
        report = cairn("gc", "--store", url, "--grace", "0").stdout.decode()
        assert "freed: 3 paths" in report and "(3 paths kept)" in report
        assert_dumps_like_nix(url, kept)
        for path in gone:
            assert cairn("path-info", "--store", url, path, check=False).returncode != 0
            assert soon_404(bridge, path)
        for path in kept:
            assert narinfo_status(bridge, path) == 200
            nar_url = bridge.get(f"/{Path(path).name[:32]}.narinfo").body.decode().split("URL: ")[1].split()[0]
            assert bridge.get(f"/{nar_url}").status == 200
        assert disk_bytes(tmp_path / "store") < before - 2_000_000  # the unrooted 2 MiB of random data
        assert "Traceback" not in bridge.log_text()
    finally:
        bridge.stop()
    assert cairn("verify", "--store", url, "--all").returncode == 0
    assert "last gc" in cairn("stats", "--store", url).stdout.decode()


@interop
def test_gc_runs_while_an_import_and_a_nix_copy_upload_go_on(closures, tmp_path: Path) -> None:
    url = f"local://{tmp_path}/store"
    junk = tree(tmp_path / "junk", "junk", files=40)
    cairn("import", "--store", url, str(junk))
    age(url, 3600)  # the junk is old: GC sweeps it while the import below re-uses its chunks
    mixed = tree(tmp_path / "mixed", "new", files=20)
    for f in list(junk.iterdir())[:20]:
        (mixed / f"old-{f.name}").write_bytes(f.read_bytes())
    kept_top, kept = closures["kept"]
    bridge = Bridge(url, [], tmp_path / "bridge.log").start()
    results: dict[str, object] = {}

    def run(name, fn) -> threading.Thread:
        def work() -> None:
            try:
                results[name] = fn()
            except BaseException as e:  # reported below
                results[name] = e
        thread = threading.Thread(target=work)
        thread.start()
        return thread

    try:
        threads = [run("gc", lambda: [cairn("gc", "--store", url, "--grace", "60s", "--everything")
                                      for _ in range(4)]),
                   run("import", lambda: cairn("import", "--store", url, str(mixed)).stdout.decode().strip()),
                   run("copy", lambda: nix("nix", "copy", "--to", bridge.url, kept_top))]
        for thread in threads:
            thread.join(300)
        assert not any(isinstance(r, BaseException) for r in results.values()), results
        imported = results["import"]
        cairn("root", "add", "--store", url, "both", imported, kept_top)
        cairn("gc", "--store", url, "--grace", "0")  # nothing else runs: everything unkept goes
        assert cairn("verify", "--store", url, "--all").returncode == 0
        assert_dumps_like_nix(url, kept)
        out = tmp_path / "out"
        nix("nix-store", "--restore", str(out), stdin=cairn("dump", "--store", url, imported).stdout)
        assert sorted(p.name for p in out.iterdir()) == sorted(p.name for p in mixed.iterdir())
        assert all((out / p.name).read_bytes() == p.read_bytes() for p in mixed.iterdir())
        assert "Traceback" not in bridge.log_text()
    finally:
        bridge.stop()
