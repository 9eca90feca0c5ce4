"""The token check for the runtime's HTTP routes (``/console``, ``/captions``): the same check as the
Socket.IO connections' (server/auth.py), and one answer when it refuses."""

from __future__ import annotations

from aiohttp import web

from livedub.runtime.errors import ErrorCode
from livedub.runtime.server.keys import AUTH_KEY


def refusal(request: web.Request) -> str | None:
    """Why ``request`` is refused, or None when its token is good (or authentication is off)."""
    environ = {
        "HTTP_AUTHORIZATION": request.headers.get("Authorization", ""),
        # Raw: aiohttp's query_string has already made a token's "+" a space (auth.py reads both).
        "QUERY_STRING": request.rel_url.raw_query_string,
    }
    return request.app[AUTH_KEY].check(environ, None)


def unauthorised(reason: str) -> web.Response:
    return web.json_response(
        {"code": ErrorCode.AUTH_FAILED.value, "message": reason, "retryable": False},
        status=401,
        headers={"WWW-Authenticate": "Bearer"},
    )
