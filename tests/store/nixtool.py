"""Running C++ Nix from tests: the interop marker and a thin subprocess wrapper."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path
from typing import Callable, TypeVar

import pytest

F = TypeVar("F", bound=Callable[..., object])
HAVE_NIX = shutil.which("nix-store") is not None

_needs_nix = pytest.mark.skipif(not HAVE_NIX, reason="C++ Nix (nix-store) is not on PATH: apt-get install nix-bin")


def interop(test: F) -> F:
    """Marks a test that compares with C++ Nix; skipped with a reason when Nix is absent."""
    return pytest.mark.interop(_needs_nix(test))


def nix(*args: str, stdin: bytes | None = None) -> bytes:
    """Run a Nix tool (`nix` gets the nix-command feature); stdout, or the failure with stderr."""
    argv = list(args)
    if argv[0] == "nix":
        argv[1:1] = ["--extra-experimental-features", "nix-command"]
    done = subprocess.run(argv, input=stdin, capture_output=True)
    if done.returncode:
        raise AssertionError(f"{' '.join(argv)} failed: {done.stderr.decode(errors='replace')}")
    return done.stdout


SH = ('sh = name: script: derivation { system = builtins.currentSystem; builder = "/bin/sh"; '
      'inherit name; args = ["-c" script]; };')
"""A Nix helper for test closures: `sh "name" "shell script"` builds one path (no sandbox)."""


def build_closure(directory: Path, bindings: str, top: str) -> tuple[str, list[str]]:
    """nix-build `let SH <bindings> in <top>`; the top path and every path of its closure."""
    expr = directory / "closure.nix"
    expr.write_text(f"let {SH} {bindings} in {top}")
    out = nix("nix-build", "--option", "sandbox", "false", "--no-out-link", str(expr)).decode().strip()
    return out, [i["path"] for i in json.loads(nix("nix", "path-info", "--json", "--recursive", out))]


def new_key(directory: Path, name: str) -> tuple[Path, str]:
    """A Nix secret key file (as `nix key generate-secret` writes it) and its public key."""
    secret = directory / f"{name}.sec"
    secret.write_bytes(nix("nix", "key", "generate-secret", "--key-name", name))
    return secret, nix("nix", "key", "convert-secret-to-public", stdin=secret.read_bytes()).decode().strip()
