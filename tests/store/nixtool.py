"""Running C++ Nix from tests: the interop marker and a thin subprocess wrapper."""

from __future__ import annotations

import shutil
import subprocess
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
