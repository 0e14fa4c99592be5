"""Small named records the Nix layer keeps beside its path infos, in the store's metadata.

Namespaces: "staged" (a NAR uploaded to nar-bridge whose narinfo has not come yet: it has
no store path, so no PathInfo, but a restart must not lose it), "log" (build logs) and
"realisation" (which store path a content-addressed derivation's output was built as: see
store/records/realisations.py).
Keeping them in the store rather than in files beside one bridge means every bridge in
front of the store sees them, and a later GC can keep what an upload in progress needs.
"""

from __future__ import annotations

import re
from abc import ABC, abstractmethod

from castore.errors import ValidationError

NAMESPACES = ("staged", "log", "realisation")
_KEY = re.compile(r"[A-Za-z0-9+\-._?=:!^]{1,255}")


def check(namespace: str, key: str) -> bytes:
    """The record key as stored; file-name-safe keys only (store path and NAR file names, and
    Nix's derivation output ids, `sha256:<hex>!out` and `<drv>^out`)."""
    if namespace not in NAMESPACES:
        raise ValueError(f"unknown record namespace {namespace!r}")
    if not _KEY.fullmatch(key) or key.startswith("."):
        raise ValidationError(f"invalid record name {key[:80]!r}")
    return key.encode()


class RecordService(ABC):
    @abstractmethod
    def get(self, namespace: str, key: str) -> bytes | None: ...

    @abstractmethod
    def put(self, namespace: str, key: str, value: bytes) -> None:
        """Durable on return (or when this thread's batch ends); replaces an earlier value."""

    def close(self) -> None:
        """Release files."""


class Namespace:
    """One namespace of a record service, as a small key-value store."""

    def __init__(self, records: RecordService, namespace: str) -> None:
        check(namespace, "x")
        self._records = records
        self._namespace = namespace

    def get(self, key: str) -> bytes | None:
        return self._records.get(self._namespace, key)

    def put(self, key: str, value: bytes) -> None:
        self._records.put(self._namespace, key, value)
