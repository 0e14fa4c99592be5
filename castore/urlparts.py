"""URLs split into the parts Cairn reads, without loading urllib.parse for the plain ones."""

from __future__ import annotations

from typing import NamedTuple

_SCHEME_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789+-.")
_NOT_PLAIN = frozenset("?#[]")
"""A query, a fragment or an IPv6 host: what makes a URL more than `scheme:[//netloc]path`."""


class UrlParts(NamedTuple):
    """What urllib.parse.urlsplit gives but the fragment, which no Cairn URL reads."""

    scheme: str
    netloc: str
    path: str
    query: str


def split_url(url: str) -> UrlParts:
    """A URL's scheme, netloc, path and query, as urllib.parse.urlsplit gives them. A plain URL
    (printable ASCII without `?#[]`, as `local:///dir` and the `lmdb://` and `file://` URLs the
    engine makes) is split here: urllib.parse imports ipaddress, which is 2 ms of every command
    that opens a store. Any other URL goes to urlsplit."""
    scheme, colon, rest = url.partition(":")
    if (colon and scheme[:1].isalpha() and _SCHEME_CHARS.issuperset(scheme) and url.isascii()
            and url.isprintable() and _NOT_PLAIN.isdisjoint(url)):
        if not rest.startswith("//"):
            return UrlParts(scheme.lower(), "", rest, "")
        netloc, slash, path = rest[2:].partition("/")
        return UrlParts(scheme.lower(), netloc, slash + path, "")
    from urllib.parse import urlsplit

    parts = urlsplit(url)
    return UrlParts(parts.scheme, parts.netloc, parts.path, parts.query)
