"""split_url gives urllib.parse.urlsplit's scheme, netloc, path and query for every URL, the
plain ones it splits itself included."""

from __future__ import annotations

from urllib.parse import urlsplit

import pytest
from hypothesis import given
from hypothesis import strategies as st

from castore.urlparts import split_url

URLS = ["local:///var/lib/cairn", "local://", "local:relative", "LOCAL:///x", "lmdb:///s/meta", "file:///s/packs",
        "local://host/dir", "local:///a b", "local:///dir?packs=s3://b/p", "local:///d#frag", "memory://",
        "grpc+unix:///run/cairn.sock", "grpc+http://[::1]:8000", "nix+https://cache.nixos.org?trusted-public-keys=k",
        "postgresql://u@h:5432/db?host=/sock", " local:///lead", "local:///tab\there", "local:///j\u00f6rg",
        "1local:///x", "lo_cal:///x", "", ":", "://x", "/abs/path", "local:///trailing ", "local:///\x7f"]


def _urlsplit(url: str) -> tuple[str, str, str, str]:
    parts = urlsplit(url)
    return parts.scheme, parts.netloc, parts.path, parts.query


@pytest.mark.parametrize("url", URLS)
def test_split_url_agrees_with_urlsplit(url: str) -> None:
    assert tuple(split_url(url)) == _urlsplit(url)


@given(st.text(alphabet=st.sampled_from("abcLS+-.:/?#[]@% \t\n\x00\x7f1\u00e9"), max_size=24))
def test_split_url_agrees_with_urlsplit_on_any_text(url: str) -> None:
    try:
        expected = _urlsplit(url)
    except ValueError:  # an unbalanced IPv6 bracket: urlsplit's own refusal, passed on
        with pytest.raises(ValueError):
            split_url(url)
        return
    assert tuple(split_url(url)) == expected


def test_a_plain_url_is_split_without_urllib() -> None:
    import subprocess
    import sys

    program = ("import sys; from castore.urlparts import split_url; split_url('local:///var/lib/cairn'); "
               "print('urllib.parse' in sys.modules)")
    assert subprocess.run([sys.executable, "-c", program], capture_output=True, text=True, check=True).stdout == "False\n"
