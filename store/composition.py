"""The Nix layer's part of the composition: PathInfoService backends and combinators.

Entries of "pathinfoservices" (see castore/composition.py for the format):

| entry                                                  | service                                       |
|--------------------------------------------------------|-----------------------------------------------|
| `url = "memory://"`, `"local:///dir"`                  | path infos kept beside castore                |
| `url = "grpc+unix:///sock"`, `"grpc+http(s)://host:port"` | a remote daemon                            |
| `url = "nix+https://host/path?trusted-public-keys=.."` | read-through of a Nix binary cache (read-only)|
| `type = "cache"`, `near`, `far`                        | near/far cache (see pathinfo/cache.py)        |
| `type = "signing"`, `inner`, `keys = ["f.sec"]`        | signs what it serves (see pathinfo/signing.py)|

Path infos that compute NARs or ingest them need a castore: `blob_service` and
`directory_service` name its entries (default "root").
"""

from __future__ import annotations

from typing import Any

from castore.composition import (BLOBS, DIRECTORIES, ENGINE_SCHEMES, ROOT, Composition, Entry, builder, engine_of,
                                 near_far)
from castore.errors import ValidationError
from castore.url import GRPC_SCHEMES, CAStore
from castore.urlparts import split_url

PATHINFOS = "pathinfoservices"
RECORDS = "recordservices"
"""Upload staging and build logs (store/records): `url = "memory://"` or `"local:///dir"`."""
KINDS = (BLOBS, DIRECTORIES, PATHINFOS)
_CASTORE_KEYS = ("blob_service", "directory_service")


def castore_of(comp: Composition, entry: Entry) -> CAStore:
    """The castore a path-info entry is composed with (owned by the composition, not by it)."""
    return CAStore(comp.get(BLOBS, entry.optional_text("blob_service", ROOT)),
                   comp.get(DIRECTORIES, entry.optional_text("directory_service", ROOT)))


def _url(entry: Entry, *allowed: str) -> str:
    entry.check(("url", *allowed))
    return entry.text("url")


@builder(PATHINFOS, "memory")
def _memory(comp: Composition, entry: Entry) -> Any:
    from store.pathinfo.memory import MemoryPathInfoService

    _url(entry, *_CASTORE_KEYS)
    return MemoryPathInfoService(castore_of(comp, entry))


@builder(PATHINFOS, *ENGINE_SCHEMES)
def _engine(comp: Composition, entry: Entry) -> Any:
    from store.pathinfo.local import LocalPathInfoService

    return LocalPathInfoService(engine_of(entry, *_CASTORE_KEYS), castore_of(comp, entry))


@builder(PATHINFOS, *GRPC_SCHEMES)
def _grpc(comp: Composition, entry: Entry) -> Any:
    from castore.url import grpc_endpoint
    from store.pathinfo.grpc import GrpcPathInfoService

    return GrpcPathInfoService(grpc_endpoint(_url(entry)))


@builder(PATHINFOS, "nix+http", "nix+https")
def _nix_http(comp: Composition, entry: Entry) -> Any:
    from store.pathinfo.nix_http import NixHttpPathInfoService

    return NixHttpPathInfoService(_url(entry, *_CASTORE_KEYS), castore_of(comp, entry))


@builder(PATHINFOS, "cache")
def _cache(comp: Composition, entry: Entry) -> Any:
    from store.pathinfo.cache import CachePathInfoService

    return CachePathInfoService(*near_far(comp, entry))


@builder(PATHINFOS, "signing")
def _signing(comp: Composition, entry: Entry) -> Any:
    from store.pathinfo.signing import SigningPathInfoService

    entry.check(("inner", "keys"))
    files = entry.params.get("keys")
    if not isinstance(files, list) or not files or not all(isinstance(f, str) for f in files):
        raise ValidationError(f"config {entry.where}: 'keys' must be a list of secret key files")
    return SigningPathInfoService(comp.get(PATHINFOS, entry.text("inner")), load_secret_keys(files))


def load_secret_keys(files: list[str]) -> tuple:
    """Nix secret key files (`nix key generate-secret`), each checked."""
    from store.signing import SecretKey

    keys = []
    for name in files:
        try:
            with open(name) as f:  # not pathlib: 1 ms of every command's start for one read
                text = f.read()
        except OSError as e:
            raise ValidationError(f"secret key file {name}: {e.strerror}") from None
        keys.append(SecretKey.parse(text.strip()))
    return tuple(keys)


@builder(RECORDS, "memory")
def _memory_records(comp: Composition, entry: Entry) -> Any:
    from store.records.memory import MemoryRecordService

    _url(entry)
    return MemoryRecordService()


@builder(RECORDS, *ENGINE_SCHEMES)
def _engine_records(comp: Composition, entry: Entry) -> Any:
    from store.records.local import LocalRecordService

    return LocalRecordService(engine_of(entry))


def default_records(config: dict, url: str | None) -> None:
    """Records go to `url` if given, else where the config says, else into the store that keeps
    the path infos when it can hold them (memory://, local://: follow the root's combinators to
    the store that takes writes), else into a local store in the user's state directory."""
    entries = config.setdefault(RECORDS, {})
    if url is not None:
        entries[ROOT] = {"url": url}
    elif ROOT not in entries:
        entries[ROOT] = {"url": _records_beside(config.get(PATHINFOS, {}))}


def _records_beside(pathinfos: dict[str, dict[str, Any]]) -> str:
    import os
    import re

    entry, seen = pathinfos.get(ROOT, {}), set()
    while "url" not in entry and id(entry) not in seen:
        seen.add(id(entry))
        entry = pathinfos.get(_writes_to(pathinfos, entry), {})
    url = str(entry.get("url", ""))
    if split_url(url).scheme in ("memory", *ENGINE_SCHEMES):
        return url
    state = os.environ.get("XDG_STATE_HOME") or os.path.join(os.path.expanduser("~"), ".local", "state")
    return f"local://{os.path.join(os.path.abspath(state), 'cairn', 'records', re.sub(r'[^A-Za-z0-9.-]+', '_', url))}"


def _writes_to(pathinfos: dict[str, dict[str, Any]], entry: dict[str, Any]) -> str:
    """The entry a signing wrapper or a cache passes writes to (see pathinfo/cache.py)."""
    names = {k: v for k, v in entry.items() if isinstance(v, str)}  # a malformed entry fails when built
    if names.get("type") == "cache":
        far = pathinfos.get(names.get("far", ""), {})
        return names.get("near", "") if str(far.get("url", "")).startswith("nix+http") else names.get("far", "")
    return names.get("inner", "")


def wrap_root(config: dict, kind: str, params: dict[str, Any]) -> None:
    """Put a combinator in front of a kind's root. In `params`, the value ROOT names the old root
    (now `<type>-<n>`) and a table is an entry of its own (named `<key>-<n>`), e.g.
    {"type": "cache", "near": ROOT, "far": {"url": "nix+https://..."}}."""
    entries = config.setdefault(kind, {})
    n = 0
    while f"{params['type']}-{n}" in entries:
        n += 1
    moved = f"{params['type']}-{n}"
    entries[moved] = entries.pop(ROOT)
    root = {}
    for key, value in params.items():
        if isinstance(value, dict):
            entries[f"{key}-{n}"] = value
            value = f"{key}-{n}"
        root[key] = moved if value == ROOT else value
    entries[ROOT] = root
