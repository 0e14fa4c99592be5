"""nar-bridge against the real C++ Nix client: copy to and from it, verify signatures, tokens from netrc,
and read-through from an upstream cache that nginx serves from `nix copy --to file://`."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.nar_bridge.conftest import free_port
from tests.store.nixtool import build_closure, interop, new_key, nix


@dataclass
class Closure:
    top: str
    paths: list[str]


@pytest.fixture(scope="module")
def closure(tmp_path_factory) -> Closure:
    """Three input-addressed paths: top -> mid -> dep, with a symlink and a self-reference."""
    top, paths = build_closure(tmp_path_factory.mktemp("closure"), f'''
        dep = sh "bridge-dep" "echo dep-{os.getpid()} > $out";
        mid = sh "bridge-mid" "/bin/mkdir $out; echo ${{dep}} > $out/dep; /bin/ln -s ${{dep}} $out/link";''',
        'sh "bridge-top" "echo building bridge-top; /bin/mkdir -p $out/bin; echo ${mid} > $out/bin/mid; '
        'echo $out > $out/self; /bin/chmod +x $out/bin/mid"')
    assert len(paths) == 3
    return Closure(top, paths)


@pytest.fixture
def keypair(tmp_path) -> tuple[Path, str]:
    """A Nix secret key file and its public key."""
    return new_key(tmp_path, f"bridge-test-{tmp_path.name}")


def fails(*args: str) -> str:
    """Run a Nix command that must fail; its stderr."""
    done = subprocess.run(["nix", "--extra-experimental-features", "nix-command", *args], capture_output=True)
    assert done.returncode != 0, f"{args} succeeded"
    return done.stderr.decode(errors="replace")


def assert_copied(closure: Closure, root: Path) -> None:
    for path in closure.paths:
        assert nix("nix", "hash", "path", f"{root}{path}") == nix("nix", "hash", "path", path)


@interop
@pytest.mark.parametrize("compression", ["xz", "zstd", "none", "bzip2", "br"])
def test_nix_copy_to_the_bridge_and_back(closure, start_bridge, nix_cache, tmp_path, compression):
    bridge = start_bridge()
    nix("nix", "copy", "--to", f"{bridge.url}?compression={compression}", closure.top)
    for narinfos in ("as Nix uploaded them", "as the bridge serves them"):
        dest = tmp_path / f"dest-{len(narinfos)}"
        nix("nix", "copy", "--no-check-sigs", "--from", bridge.url, "--to", f"local?root={dest}", closure.top)
        assert_copied(closure, dest)
        nix_cache()
    assert "Traceback" not in bridge.log_text()


@interop
def test_paths_signed_by_the_bridge_verify_and_unsigned_ones_do_not(closure, start_bridge, nix_cache, keypair):
    secret, public = keypair
    signed = start_bridge(None, "--sign-key", str(secret))
    nix("nix", "copy", "--to", signed.url, closure.top)
    nix_cache()
    infos = json.loads(nix("nix", "path-info", "--json", "--recursive", "--store", signed.url, closure.top))
    assert sorted(i["path"] for i in infos) == sorted(closure.paths)
    assert all(any(s.startswith(public.split(":")[0] + ":") for s in i["signatures"]) for i in infos)
    nix("nix", "store", "verify", "--store", signed.url, "--trusted-public-keys", public, "--recursive", closure.top)

    unsigned = start_bridge(signed.store)  # the same store, served without a key
    err = fails("store", "verify", "--store", unsigned.url, "--trusted-public-keys", public, "--recursive",
                closure.top)
    assert "untrusted" in err or "signature" in err


@interop
def test_uploads_need_the_token_nix_sends_from_netrc(closure, start_bridge, nix_cache, tmp_path):
    (tmp_path / "token").write_text("t0ken\n")
    bridge = start_bridge(None, "--token-file", str(tmp_path / "token"))
    err = fails("copy", "--to", bridge.url, closure.top)
    assert "401" in err
    netrc = tmp_path / "netrc"
    netrc.write_text("machine 127.0.0.1 login nix password t0ken\n")
    nix("nix", "copy", "--option", "netrc-file", str(netrc), "--to", bridge.url, closure.top)
    nix_cache()
    dest = tmp_path / "dest"
    nix("nix", "copy", "--no-check-sigs", "--from", bridge.url, "--to", f"local?root={dest}", closure.top)
    assert_copied(closure, dest)


@interop
def test_build_logs_go_up_with_copy_log_and_come_back_with_nix_log(closure, start_bridge, nix_cache):
    bridge = start_bridge()
    no_substitutes = ["--option", "substituters", ""]
    nix("nix", "copy", *no_substitutes, "--to", bridge.url, closure.top)
    drv = nix("nix-store", "--query", "--deriver", closure.top).decode().strip()
    nix("nix", "store", "copy-log", *no_substitutes, "--to", bridge.url, drv)
    assert b"building bridge-top" in nix("nix", "log", *no_substitutes, "--store", bridge.url, closure.top)


@pytest.fixture
def nginx(tmp_path):
    """nginx(root) -> URL: a static file server on loopback, stopped at teardown; `.access` is its log."""
    started: list[subprocess.Popen] = []

    def serve(root: Path) -> str:
        port = free_port()
        conf = tmp_path / f"nginx-{port}.conf"
        conf.write_text(f"""
            daemon off; worker_processes 1; user root; pid {tmp_path}/nginx-{port}.pid;
            error_log {tmp_path}/nginx-error.log;
            events {{ worker_connections 64; }}
            http {{
              access_log {tmp_path}/nginx-access.log;
              client_body_temp_path {tmp_path}; proxy_temp_path {tmp_path}; fastcgi_temp_path {tmp_path};
              uwsgi_temp_path {tmp_path}; scgi_temp_path {tmp_path};
              server {{ listen 127.0.0.1:{port}; root {root}; }}
            }}""")
        proc = subprocess.Popen(["nginx", "-c", str(conf), "-p", str(tmp_path)], stderr=subprocess.DEVNULL)
        started.append(proc)
        for _ in range(100):
            try:
                import urllib.request
                urllib.request.urlopen(f"http://127.0.0.1:{port}/nix-cache-info", timeout=1)
                return f"http://127.0.0.1:{port}"
            except OSError:
                time.sleep(0.05)
        raise AssertionError("nginx did not start")

    serve.access = tmp_path / "nginx-access.log"
    yield serve
    for proc in started:
        proc.send_signal(signal.SIGQUIT)
        proc.wait(10)


@pytest.fixture
def upstream_cache(closure, keypair, tmp_path) -> Path:
    """The closure in a signed, xz-compressed `file://` binary cache."""
    secret, _ = keypair
    cache = tmp_path / "upstream"
    nix("nix", "copy", "--to", f"file://{cache}?secret-key={secret}", closure.top)
    return cache


@interop
def test_upstream_read_through_keeps_signatures(closure, start_bridge, nginx, upstream_cache, keypair, nix_cache,
                                                tmp_path):
    _, public = keypair
    bridge = start_bridge("memory://", "--upstream", f"nix+{nginx(upstream_cache)}?trusted-public-keys={public}")
    dest = tmp_path / "dest"
    nix("nix", "copy", "--from", bridge.url, "--to", f"local?root={dest}", "--trusted-public-keys", public,
        closure.top)
    assert_copied(closure, dest)
    infos = json.loads(nix("nix", "path-info", "--json", "--store", f"local?root={dest}", closure.top))
    assert infos[0]["signatures"] and infos[0]["signatures"][0].startswith(public.split(":")[0] + ":")


@interop
def test_upstream_with_a_bad_signature_is_refused(closure, start_bridge, nginx, upstream_cache, nix_cache, tmp_path):
    other = tmp_path / "other.sec"
    other.write_bytes(nix("nix", "key", "generate-secret", "--key-name", "other-1"))
    other_public = nix("nix", "key", "convert-secret-to-public", stdin=other.read_bytes()).decode().strip()
    bridge = start_bridge("memory://", "--upstream", f"nix+{nginx(upstream_cache)}?trusted-public-keys={other_public}")
    hash_part = Path(closure.top).name[:32]
    assert bridge.get(f"/{hash_part}.narinfo").status == 404
    assert "no valid signature" in bridge.log_text()
    fails("copy", "--no-check-sigs", "--from", bridge.url, "--to", f"local?root={tmp_path / 'dest'}", closure.top)


@interop
def test_concurrent_misses_fetch_once(closure, start_bridge, nginx, upstream_cache, keypair):
    _, public = keypair
    bridge = start_bridge("memory://", "--upstream", f"nix+{nginx(upstream_cache)}?trusted-public-keys={public}")
    hash_part = Path(closure.top).name[:32]
    statuses: list[int] = []
    threads = [threading.Thread(target=lambda: statuses.append(bridge.get(f"/{hash_part}.narinfo").status))
               for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert statuses == [200] * 8
    log = nginx.access.read_text()
    assert log.count(f"GET /{hash_part}.narinfo") == 1
    assert log.count("GET /nar/") == 1
