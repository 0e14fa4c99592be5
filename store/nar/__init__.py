"""NAR, the Nix ARchive: reader and writer (events), castore ingest and render, the wire grammar.

`reader.read_nar` turns bytes into events (see events.py), `writer.write_nar` turns events into
bytes, so `write_nar(read_nar(f))` re-encodes a NAR without holding any file in memory.
`ingest` stores a NAR in castore as it is read; `render` writes a castore tree back as a NAR,
byte for byte what `nix-store --dump` gives. This module holds only what every side shares,
so that loading one side does not load the others.
"""

from __future__ import annotations

from typing import Protocol


class SupportsRead(Protocol):
    def read(self, size: int = -1, /) -> bytes: ...
