"""The one place that turns URLs and config into composed services (after Snix's composition).

A composition is a set of named service entries per kind ("blobservices",
"directoryservices", and the Nix layer's "pathinfoservices"). An entry is a backend URL
(`{url = "local:///var/lib/cairn"}`) or a combinator with parameters that name other entries
of its kind (`{type = "cache", near = "mem", far = "daemon"}`). Programs use the entry named
"root" of each kind. One `--store URL` is a composition with one root per kind; a TOML file
(`--config FILE`, `$CAIRN_CONFIG`) spells out any other:

    [blobservices.root]
    type = "cache"
    near = "near"
    far = "far"

    [blobservices.near]
    url = "local:///var/cache/cairn"

    [blobservices.far]
    url = "grpc+unix:///run/cairn.sock"

Builders are registered per kind and per type (a URL's type is its scheme); each layer
registers its own (castore here, store in store/composition.py), and every backend module
is imported only when an entry needs it. An entry is built once per composition, so two
combinators naming one entry share it; the composition closes what it built.
"""

from __future__ import annotations

import os
import threading
from typing import Any, Callable, Mapping, NamedTuple

from castore.errors import ValidationError
from castore.url import GRPC_SCHEMES
from castore.urlparts import split_url

BLOBS, DIRECTORIES = "blobservices", "directoryservices"
ROOT = "root"
ENV_CONFIG = "CAIRN_CONFIG"

Config = dict[str, dict[str, dict[str, Any]]]
"""kind -> entry name -> parameters."""


class Entry(NamedTuple):
    """One service to build: where it sits in the config (for messages) and its parameters."""

    kind: str
    name: str
    params: Mapping[str, Any]

    @property
    def where(self) -> str:
        return f"{self.kind}.{self.name}"

    def check(self, allowed: tuple[str, ...]) -> None:
        """Refuse parameters the builder does not know: a typo must not be ignored silently."""
        unknown = sorted(set(self.params) - set(allowed) - {"type"})
        if unknown:
            raise ValidationError(f"config {self.where}: unknown key {unknown[0]!r} (known: {', '.join(allowed)})")

    def text(self, key: str) -> str:
        value = self.params.get(key)
        if not isinstance(value, str) or not value:
            raise ValidationError(f"config {self.where}: {key!r} must be a non-empty string")
        return value

    def optional_text(self, key: str, default: str) -> str:
        return self.text(key) if key in self.params else default


Builder = Callable[["Composition", Entry], Any]
_BUILDERS: dict[tuple[str, str], Builder] = {}


def builder(kind: str, *types: str) -> Callable[[Builder], Builder]:
    """Register a function that builds entries of `kind` whose type (or URL scheme) is one of `types`."""
    def register(fn: Builder) -> Builder:
        for t in types:
            _BUILDERS[(kind, t)] = fn
        return fn
    return register


def entry_type(entry: Entry) -> str:
    """A combinator's `type`, or a backend URL's scheme."""
    if "url" in entry.params:
        if "type" in entry.params:
            raise ValidationError(f"config {entry.where}: give either 'url' or 'type', not both")
        return split_url(entry.text("url")).scheme
    return entry.text("type")


class Composition:
    """Builds entries on first use, once each; close() closes them, the last built first."""

    def __init__(self, config: Config) -> None:
        self._config = config
        self._built: dict[tuple[str, str], Any] = {}
        self._order: list[Any] = []
        self._building: list[tuple[str, str]] = []
        self._lock = threading.RLock()

    def get(self, kind: str, name: str = ROOT) -> Any:
        """The service named `name` of `kind`, built (with what it refers to) on first use."""
        key = (kind, name)
        with self._lock:
            if key in self._built:
                return self._built[key]
            params = self._config.get(kind, {}).get(name)
            if params is None:
                raise ValidationError(f"no service {kind}.{name} is configured")
            if key in self._building:
                cycle = " -> ".join(f"{k}.{n}" for k, n in self._building[self._building.index(key):])
                raise ValidationError(f"config refers to itself: {cycle} -> {kind}.{name}")
            entry = Entry(kind, name, params)
            build = _BUILDERS.get((kind, entry_type(entry)))
            if build is None:
                known = sorted(t for k, t in _BUILDERS if k == kind)
                raise ValidationError(f"config {entry.where}: unknown type or URL scheme {entry_type(entry)!r} "
                                      f"(known: {', '.join(known)})")
            self._building.append(key)
            try:
                service = build(self, entry)
            finally:
                self._building.pop()
            self._built[key] = service
            self._order.append(service)
            return service

    def has(self, kind: str, name: str = ROOT) -> bool:
        return name in self._config.get(kind, {})

    def close(self) -> None:
        with self._lock:
            services, self._order, self._built = self._order[::-1], [], {}
        for service in services:
            service.close()


def compose(config_file: str | None = None, *, store: str | None = None,
            overrides: Mapping[str, str | None] = {}, kinds: tuple[str, ...] = (BLOBS, DIRECTORIES)) -> Config:
    """The config a command runs with: the TOML file (or $CAIRN_CONFIG) if any; `store` then
    replaces the root of every kind, and each override (kind -> URL) the root of its kind.
    With neither a file nor `store`, every root is the default store URL."""
    config_file = config_file or os.environ.get(ENV_CONFIG)
    config: Config = load_config(config_file) if config_file else {}
    if store is None and not config_file:
        from castore.url import default_store_url

        store = default_store_url()
    for kind in kinds:
        url = overrides.get(kind) or store
        if url is not None:
            config.setdefault(kind, {})[ROOT] = {"url": url}
    return config


def load_config(path: str) -> Config:
    """A TOML composition file, checked for shape (each entry a table); entries are checked when built."""
    import tomllib

    try:
        with open(path, "rb") as f:
            raw = tomllib.load(f)
    except OSError as e:
        raise ValidationError(f"config {path}: {e.strerror}") from None
    except tomllib.TOMLDecodeError as e:
        raise ValidationError(f"config {path}: {e}") from None
    for kind, entries in raw.items():
        if not isinstance(entries, dict) or not all(isinstance(v, dict) for v in entries.values()):
            raise ValidationError(f"config {path}: [{kind}] must hold tables like [{kind}.root]")
    return raw


# -- castore's builders -----------------------------------------------------------------------


@builder(BLOBS, "memory")
def _memory_blobs(comp: Composition, entry: Entry):
    from castore.blobs.memory import MemoryBlobService

    _plain_url(entry)
    return MemoryBlobService()


@builder(DIRECTORIES, "memory")
def _memory_directories(comp: Composition, entry: Entry):
    from castore.directories.memory import MemoryDirectoryService

    _plain_url(entry)
    return MemoryDirectoryService()


ENGINE_SCHEMES = ("local", "postgresql")
"""URLs the engine serves (see castore/storage/location.py for their `packs=` parameter)."""


@builder(BLOBS, *ENGINE_SCHEMES)
def _engine_blobs(comp: Composition, entry: Entry):
    from castore.blobs.local import LocalBlobService

    return LocalBlobService(engine_of(entry))


@builder(DIRECTORIES, *ENGINE_SCHEMES)
def _engine_directories(comp: Composition, entry: Entry):
    from castore.directories.local import LocalDirectoryService

    return LocalDirectoryService(engine_of(entry))


def engine_of(entry: Entry, *allowed: str):
    """The engine (shared by every service of one store in a process) an entry's URL names."""
    from castore.local.registry import open_engine

    entry.check(("url", *allowed))
    return open_engine(entry.text("url"))


@builder(BLOBS, *GRPC_SCHEMES)
def _grpc_blobs(comp: Composition, entry: Entry):
    from castore.blobs.grpc import GrpcBlobService
    from castore.url import grpc_endpoint

    entry.check(("url",))
    return GrpcBlobService(grpc_endpoint(entry.text("url")))


@builder(DIRECTORIES, *GRPC_SCHEMES)
def _grpc_directories(comp: Composition, entry: Entry):
    from castore.directories.grpc import GrpcDirectoryService
    from castore.url import grpc_endpoint

    entry.check(("url",))
    return GrpcDirectoryService(grpc_endpoint(entry.text("url")))


@builder(BLOBS, "cache")
def _cached_blobs(comp: Composition, entry: Entry):
    from castore.blobs.cache import CacheBlobService

    return CacheBlobService(*near_far(comp, entry))


@builder(DIRECTORIES, "cache")
def _cached_directories(comp: Composition, entry: Entry):
    from castore.directories.cache import CacheDirectoryService

    return CacheDirectoryService(*near_far(comp, entry))


def near_far(comp: Composition, entry: Entry) -> tuple[Any, Any]:
    """The two services a `cache` entry names (entries of its own kind)."""
    entry.check(("near", "far"))
    near, far = entry.text("near"), entry.text("far")
    return comp.get(entry.kind, near), comp.get(entry.kind, far)


def _plain_url(entry: Entry) -> str:
    """The URL of an entry that takes no other parameters (and no query string)."""
    entry.check(("url",))
    url = entry.text("url")
    if split_url(url).query:
        raise ValidationError(f"config {entry.where}: {url!r} takes no parameters")
    return url
