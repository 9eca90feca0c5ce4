"""``/console``: the operator's page (one self-contained HTML file) and the JSON feed it polls.

The page is built from ``runtime/console`` (Vite, TypeScript, uPlot, socket.io-client) into a single
HTML file with every script and style inlined, committed at ``server/console_dist/index.html`` and
shipped as package data: nothing is fetched from anywhere at run time, and one file needs one
authorisation check. A Content-Security-Policy naming the inline script's hash makes the browser
refuse any other script or any connection to another host, so "no CDN" is enforced, not hoped for.

Both routes sit behind the Socket.IO connections' own check (server/auth.py): the token comes as
``?token=`` (what a person pastes into a browser), or ``Authorization: Bearer`` (what the page
sends when it polls). With authentication off (loopback, ``AUTH_MODE=disabled``) they are open.
"""

from __future__ import annotations

import base64
import hashlib
import re
from functools import cache
from importlib import resources

from aiohttp import web

from livedub.runtime.server.http_auth import refusal, unauthorised
from livedub.runtime.server.keys import CONSOLE_KEY, SERVICE_KEY

_INLINE_SCRIPT = re.compile(rb"<script\b[^>]*>(.*?)</script>", re.DOTALL)


@cache
def page() -> tuple[bytes, str]:
    """The built page and its Content-Security-Policy (read once: it is package data)."""
    body = resources.files("livedub.runtime.server").joinpath("console_dist/index.html").read_bytes()
    hashes = " ".join(
        "'sha256-" + base64.b64encode(hashlib.sha256(script).digest()).decode() + "'"
        for script in _INLINE_SCRIPT.findall(body)
    )
    policy = (
        "default-src 'none'; "
        # blob: for the microphone's AudioWorklet, whose module the page itself makes.
        f"script-src {hashes} blob:; "
        "style-src 'unsafe-inline'; "  # uPlot and the bundle set inline styles
        "img-src 'self' data: blob:; "
        "media-src 'self' blob: mediastream:; "
        "connect-src 'self'; "  # the snapshot feed and Socket.IO (ws: to the same host included)
        "base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
    )
    return body, policy


async def console_page(request: web.Request) -> web.Response:
    reason = refusal(request)
    if reason is not None:
        return unauthorised(reason + " (open /console?token=...)")
    body, policy = page()
    return web.Response(
        body=body,
        content_type="text/html",
        charset="utf-8",
        headers={
            "Content-Security-Policy": policy,
            "Cache-Control": "no-store",  # the URL may carry the token; keep it out of caches
            "Referrer-Policy": "no-referrer",
            "X-Content-Type-Options": "nosniff",
        },
    )


async def console_snapshot(request: web.Request) -> web.Response:
    reason = refusal(request)
    if reason is not None:
        return unauthorised(reason)
    # Only the stream the page shows carries its points: the document stays small (console_feed).
    document = request.app[CONSOLE_KEY].snapshot(request.app[SERVICE_KEY], request.query.get("stream"))
    return web.json_response(document, headers={"Cache-Control": "no-store"})


def add_routes(app: web.Application) -> None:
    app.router.add_get("/console", console_page)
    app.router.add_get("/console/", console_page)
    app.router.add_get("/console/api/snapshot", console_snapshot)
