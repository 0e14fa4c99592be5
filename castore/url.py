"""castore's service URLs and the CAStore pair; castore.composition builds services from them.

| URL                          | backend                                  |
|------------------------------|------------------------------------------|
| memory://                    | in-process dicts (tests)                 |
| local:///abs/dir             | the embedded store (LMDB + pack files)   |
| grpc+unix:///abs/socket      | a remote daemon over a unix socket       |
| grpc+http://host:port        | a remote daemon over TCP                 |
| grpc+https://host:port       | a remote daemon over TCP with TLS        |

gRPC URLs take `?token-file=FILE` (the daemon's bearer token; default `$CAIRN_TOKEN`) and, for
grpc+https, `?ca=FILE` (the CA to trust; default `$SSL_CERT_FILE`, else the system's roots).
"""

from __future__ import annotations

import contextlib
import os
from typing import TYPE_CHECKING, Iterator, NamedTuple

from castore.blobs.service import BlobService
from castore.directories.service import DirectoryService
from castore.errors import ValidationError
from castore.urlparts import split_url

if TYPE_CHECKING:
    from castore.composition import Composition

ENV_STORE = "CAIRN_STORE"
ENV_TOKEN = "CAIRN_TOKEN"
ENV_CA = "SSL_CERT_FILE"
GRPC_SCHEMES = ("grpc+unix", "grpc+http", "grpc+https")
_CLIENT_PARAMS = {"grpc+unix": ("token-file",), "grpc+http": ("token-file",), "grpc+https": ("token-file", "ca")}


def default_store_url() -> str:
    """$CAIRN_STORE, else a local store in the user's data directory."""
    if url := os.environ.get(ENV_STORE):
        return url
    data = os.environ.get("XDG_DATA_HOME") or os.path.join(os.path.expanduser("~"), ".local", "share")
    return f"local://{os.path.join(os.path.abspath(data), 'cairn', 'store')}"


def local_path(url: str) -> str:
    """The directory of a `local:///abs/dir` URL."""
    parts = split_url(url)
    if parts.netloc or not parts.path.startswith("/"):
        raise ValidationError(f"local store URL needs an absolute path: {url!r} (local:///abs/dir)")
    return parts.path


def grpc_target(url: str) -> str:
    """The grpcio target for `grpc+unix:///socket` or `grpc+http(s)://host:port`."""
    from urllib.parse import urlsplit

    parts = urlsplit(url)
    if parts.scheme == "grpc+unix":
        if not parts.path.startswith("/") or parts.netloc:
            raise ValidationError(f"grpc+unix URL needs an absolute socket path: {url!r}")
        return f"unix://{parts.path}"
    if parts.scheme in ("grpc+http", "grpc+https"):
        if not parts.hostname or not parts.port:
            raise ValidationError(f"{parts.scheme} URL needs host:port: {url!r}")
        return parts.netloc
    raise ValidationError(f"not a gRPC URL: {url!r}")


class GrpcEndpoint(NamedTuple):
    """Where a client connects and how: what one shared channel is made from."""

    target: str
    """The grpcio target (`unix:///sock`, `host:port`)."""
    tls: bool = False
    ca: bytes | None = None
    """PEM roots to trust over TLS; None: grpcio's own."""
    token: str | None = None
    """Sent as `authorization: Bearer <token>` with every call."""


def grpc_endpoint(url: str) -> GrpcEndpoint:
    """A client's endpoint from a gRPC URL, its `token-file` and `ca` parameters and the environment."""
    scheme = split_url(url).scheme
    target = grpc_target(url.split("?", 1)[0])
    params = _query(url, _CLIENT_PARAMS[scheme])
    token = _token(params.get("token-file"))
    if scheme != "grpc+https":
        return GrpcEndpoint(target, token=token)
    ca_file = params.get("ca") or os.environ.get(ENV_CA)
    ca = _read_text(ca_file, "CA file").encode() if ca_file else None
    return GrpcEndpoint(target, tls=True, ca=ca, token=token)


def _token(token_file: str | None) -> str | None:
    """The token in `token_file`, else $CAIRN_TOKEN, else None."""
    return os.environ.get(ENV_TOKEN) or None if token_file is None else read_token_file(token_file)


def read_token_file(path: str) -> str:
    """The token a file holds (surrounding whitespace dropped); an empty file is an error."""
    token = _read_text(path, "token file").strip()
    if not token:
        raise ValidationError(f"token file {path} is empty")
    return token


def _query(url: str, allowed: tuple[str, ...]) -> dict[str, str]:
    """A URL's query parameters, each given once and known."""
    from urllib.parse import parse_qs

    query = split_url(url).query
    try:
        params = parse_qs(query, strict_parsing=bool(query))
    except ValueError:
        raise ValidationError(f"malformed query in {url!r}") from None
    for key, values in params.items():
        if key not in allowed:
            raise ValidationError(f"unknown parameter {key!r} in {url!r} (known: {', '.join(allowed)})")
        if len(values) != 1:
            raise ValidationError(f"parameter {key!r} given {len(values)} times in {url!r}")
    return {key: values[0] for key, values in params.items()}


def _read_text(path: str, what: str) -> str:
    try:
        with open(path, encoding="utf-8") as f:
            return f.read()
    except (OSError, UnicodeDecodeError) as e:
        raise ValidationError(f"cannot read {what} {path}: {getattr(e, 'strerror', None) or e}") from None


class CAStore:
    """A blob and a directory service used together. (A plain class, not a dataclass: building one
    costs every command 0.2 ms at start.)"""

    def __init__(self, blobs: BlobService, directories: DirectoryService,
                 composition: Composition | None = None) -> None:
        self.blobs = blobs
        self.directories = directories
        self.composition = composition
        """What built the services, and closes them; None: close() closes the two itself."""

    def probe(self) -> None:
        """Blocking: ask both services something small (each answers from its index; over gRPC one
        call each); raises when one cannot answer. For health checks (daemon, nar-bridge), which do
        not ask path infos: those may read through an upstream cache, whose outage must not take
        the service out of rotation."""
        from castore.digest import EMPTY_DIGEST

        self.blobs.has(EMPTY_DIGEST)
        self.directories.get(EMPTY_DIGEST)

    @contextlib.contextmanager
    def batch(self) -> Iterator[None]:
        """Group this thread's writes; they are durable when its outermost batch exits."""
        with self.blobs.batch(), self.directories.batch():
            yield

    def close(self) -> None:
        if self.composition is not None:
            self.composition.close()
        else:
            self.blobs.close()
            self.directories.close()

    def __enter__(self) -> CAStore:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def open_castore(url: str | None = None, *, blob_url: str | None = None, directory_url: str | None = None,
                 config: str | None = None) -> CAStore:
    """Both services from one URL, or the roots of a composition file; the specific URLs override."""
    from castore.composition import BLOBS, DIRECTORIES, Composition, compose

    comp = Composition(compose(config, store=url, overrides={BLOBS: blob_url, DIRECTORIES: directory_url}))
    try:
        return CAStore(comp.get(BLOBS), comp.get(DIRECTORIES), comp)
    except BaseException:
        comp.close()
        raise
