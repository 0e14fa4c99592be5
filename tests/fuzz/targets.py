"""Fuzz targets: one function per parser that takes input from outside Cairn.

Each target feeds arbitrary bytes to a parser the way an edge would (an HTTP request, an
uploaded NAR, a narinfo from an upstream cache, a gRPC message) and fails only on what an
edge must never see: an exception that is not the parser's own typed error (a bare
ValueError, an IndexError, a RecursionError...), a result that does not round-trip, or
output growing past a bound. `bench/fuzz.py` runs them under atheris; `test_seeds.py`
replays the checked-in seeds in every test run.
"""

from __future__ import annotations

import io
from typing import Callable

from aiohttp import web

from castore.errors import ValidationError
from castore.nodes import Directory, decode_canonical_node, decode_node
from castore.url import open_castore
from castore.wire import NotCanonical
from nar_bridge.names import NarFile, parse_castore_nar, parse_hash_part
from nar_bridge.nar import parse_range
from store import nixbase32
from store.compression import decompressing
from store.contentaddress import ContentAddress
from store.nar.events import RegularFile
from store.nar.ingest import ingest_nar
from store.nar.reader import read_nar
from store.nar.render import render_nar
from store.narinfo import NarInfo
from store.records.realisations import check_built, check_hashed, hashed_id
from store.nixhash import NixHash
from store.storepath import StorePath

DECOMPRESSED_LIMIT = 16 << 20
"""A decoder target stops reading here: a small input may legitimately expand far (a bomb is
bounded by streaming, which this checks by reading in pieces, not by a total)."""


def _text(data: bytes) -> str:
    return data.decode("utf-8", "surrogateescape")


def nar_reader(data: bytes) -> None:
    """Every event of a NAR stream, file contents included."""

    try:
        for event in read_nar(io.BytesIO(data), block_size=64):
            if isinstance(event, RegularFile):
                while event.contents.read(1 << 16):
                    pass
    except ValidationError:
        pass


def nar_ingest(data: bytes) -> None:
    """A NAR into a fresh in-memory castore; when accepted, it renders back byte-identical."""

    with open_castore("memory://") as store:
        try:
            result = ingest_nar(store, io.BytesIO(data))
        except ValidationError:
            return
        rendered = b"".join(render_nar(store, result.node))
        assert rendered == data, "an accepted NAR must be canonical: it renders back identical"


def narinfo(data: bytes) -> None:
    """A narinfo document; an accepted one renders to text that parses to the same value."""

    try:
        info = NarInfo.parse(data)
    except ValidationError:
        return
    assert NarInfo.parse(info.render()) == info


def nix_names(data: bytes) -> None:
    """nixbase32, store path base names and absolute paths, Nix hashes, CA fields."""

    text = _text(data)
    try:
        decoded = nixbase32.decode(text)
        assert nixbase32.encode(decoded) == text
    except ValidationError:
        pass
    for parse in (StorePath.from_basename, StorePath.parse, NixHash.parse, ContentAddress.parse):
        try:
            parse(text)
        except ValidationError:
            pass


def castore_wire(data: bytes) -> None:
    """Directory and Node messages, canonical and not; an accepted Directory re-encodes."""

    try:
        directory = Directory.decode_canonical(data)
        assert directory.encoded == data, "a canonical Directory is its own encoding"
    except (ValidationError, NotCanonical):  # NotCanonical: stored bytes in another form
        pass
    try:
        decode_canonical_node(data)
    except (ValidationError, NotCanonical):
        pass
    for decode in (Directory.decode, decode_node):
        try:
            decode(data)
        except ValidationError:
            pass


def _decoder(compression: str) -> Callable[[bytes], None]:
    def target(data: bytes) -> None:

        reader = decompressing(io.BytesIO(data), compression)
        total = 0
        try:
            while total < DECOMPRESSED_LIMIT:
                piece = reader.read(1 << 16)
                if not piece:
                    break
                assert len(piece) <= 1 << 16, "a read returns at most what was asked"
                total += len(piece)
        except ValidationError:
            pass
    target.__name__ = f"decompress_{compression}"
    target.__doc__ = f"The {compression} decoder, read in bounded pieces."
    return target


decompress_xz = _decoder("xz")
decompress_zstd = _decoder("zstd")
decompress_bzip2 = _decoder("bzip2")
decompress_br = _decoder("br")


def http_names(data: bytes) -> None:
    """What nar-bridge parses from a request line and headers: Range, ?narsize=, NAR and narinfo names."""

    text = _text(data)
    head, _, tail = text.partition("\n")
    for size in (1, 4096, 1 << 40):
        try:
            got = parse_range(text, size)
        except (ValidationError, web.HTTPRequestRangeNotSatisfiable):
            continue
        assert got is None or 0 <= got.first <= got.last < size
    for parse in (NarFile.parse, NarFile.from_url, parse_hash_part):
        try:
            parse(text)
        except ValidationError:
            pass
    try:
        parse_castore_nar(head, tail)
    except ValidationError:
        pass


def realisation(data: bytes) -> None:
    """A realisation uploaded to `realisations/<id>.doi` (first line: the id) or `build-trace-v2/`."""
    head, _, body = data.partition(b"\n")
    try:
        check_hashed(hashed_id(_text(head)), body)
    except ValidationError:
        pass
    try:
        check_built(body)
    except ValidationError:
        pass


TARGETS: dict[str, Callable[[bytes], None]] = {
    f.__name__: f for f in (nar_reader, nar_ingest, narinfo, nix_names, castore_wire, decompress_xz,
                            decompress_zstd, decompress_bzip2, decompress_br, http_names, realisation)}
