"""Narinfo extras: the narinfo fields PathInfo has no place for (System and unknown keys), per store path.

An archived narinfo is re-served with these, so it keeps every line the original had.
A side record rather than a PathInfo field: the proto (and gRPC peers) stay as Tvix
defines them. Keyed by the store path's 20-byte digest, like PathInfo.
"""

from __future__ import annotations

import json
import threading
from abc import ABC, abstractmethod
from dataclasses import dataclass

from castore.errors import ValidationError
from castore.local.engine import EngineUser, LocalEngine
from store.narinfo import NarInfo, UnknownField

EXTRAS = "narinfo-extras"


@dataclass(frozen=True, slots=True)
class NarinfoExtras:
    system: str | None = None
    unknown: tuple[UnknownField, ...] = ()

    @classmethod
    def of(cls, narinfo: NarInfo) -> NarinfoExtras | None:
        """What of `narinfo` PathInfo cannot hold; None when there is nothing."""
        if narinfo.system is None and not narinfo.unknown:
            return None
        return cls(narinfo.system, narinfo.unknown)

    def encode(self) -> bytes:
        return json.dumps({"system": self.system,
                           "unknown": [[u.after, u.key, u.value] for u in self.unknown]}).encode()

    @classmethod
    def decode(cls, data: bytes) -> NarinfoExtras:
        try:
            raw = json.loads(data)
            return cls(raw["system"], tuple(UnknownField(*field) for field in raw["unknown"]))
        except (ValueError, KeyError, TypeError) as e:
            raise ValidationError(f"malformed narinfo extras record: {e}") from e


class NarinfoExtrasService(ABC):
    @abstractmethod
    def get(self, digest: bytes) -> NarinfoExtras | None:
        """By the 20-byte digest of the store path; None when it has none."""

    @abstractmethod
    def put(self, digest: bytes, extras: NarinfoExtras) -> None:
        """Store (replacing an earlier record); durable on return, or when this thread's batch ends."""

    def close(self) -> None:
        """Release files."""


class MemoryNarinfoExtras(NarinfoExtrasService):
    def __init__(self) -> None:
        self._records: dict[bytes, NarinfoExtras] = {}
        self._lock = threading.Lock()

    def get(self, digest: bytes) -> NarinfoExtras | None:
        return self._records.get(bytes(digest))

    def put(self, digest: bytes, extras: NarinfoExtras) -> None:
        with self._lock:
            self._records[bytes(digest)] = extras


class LocalNarinfoExtras(EngineUser, NarinfoExtrasService):
    """In the embedded store's LMDB, beside the `pathinfo` database."""

    def __init__(self, engine: LocalEngine) -> None:
        super().__init__(engine)
        engine.db(EXTRAS)

    def get(self, digest: bytes) -> NarinfoExtras | None:
        raw = self.engine.get(EXTRAS, bytes(digest))
        return None if raw is None else NarinfoExtras.decode(raw)

    def put(self, digest: bytes, extras: NarinfoExtras) -> None:
        self.engine.put(EXTRAS, [(bytes(digest), extras.encode())])
