"""Who may write: `--read-only` refuses every write (403); `--token-file` requires the token (401).

Nix sends credentials from its netrc file as HTTP Basic (the token is the password,
any user name); other clients may send `Authorization: Bearer <token>`. Reads stay
open. The check runs before a body is accepted: for `Expect: 100-continue` (which
curl sends with every upload) the refusal replaces the 100, so no NAR is sent in vain.
"""

from __future__ import annotations

import base64
import binascii
import hmac
from dataclasses import dataclass
from typing import Awaitable, Callable

from aiohttp import web
from aiohttp.web_urldispatcher import _default_expect_handler  # sends "100 Continue" the way aiohttp does

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
REALM = 'Basic realm="cairn nar-bridge"'


@dataclass(frozen=True)
class Access:
    read_only: bool = False
    token: str | None = None

    def denial(self, request: web.Request) -> web.Response | None:
        """The refusal of a write request, or None when it may go ahead."""
        if self.read_only:
            response = web.Response(status=403, text="this cache is read-only\n")
        elif self.token is None or self._presented_token(request.headers.get("Authorization", "")):
            return None
        else:
            response = web.Response(status=401, text="writes need the cache's token\n",
                                    headers={"WWW-Authenticate": REALM})
        response.force_close()  # the unread body must not be taken for the next request
        return response

    def _presented_token(self, authorization: str) -> bool:
        scheme, _, credentials = authorization.strip().partition(" ")
        if scheme.lower() == "bearer":
            offered = credentials.strip()
        elif scheme.lower() == "basic":
            try:
                offered = base64.b64decode(credentials.strip(), validate=True).decode().partition(":")[2]
            except (binascii.Error, UnicodeDecodeError):
                return False
        else:
            return False
        assert self.token is not None
        return hmac.compare_digest(offered.encode(), self.token.encode())


ACCESS = web.AppKey("access", Access)


def guarded(handler: Handler) -> Handler:
    """The handler of a write, refused first when `Access` says so."""
    async def guard(request: web.Request) -> web.StreamResponse:
        return request.app[ACCESS].denial(request) or await handler(request)
    return guard


async def expect_handler(request: web.Request) -> web.StreamResponse | None:
    """For write routes: refuse before `100 Continue`, else continue as aiohttp does."""
    return request.app[ACCESS].denial(request) or await _default_expect_handler(request)
