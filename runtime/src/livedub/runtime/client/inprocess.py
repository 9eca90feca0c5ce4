"""``livedub dub`` with no ``--url``: the real runtime on a private loopback port inside this process.

Why a real server and not a call into ``DubbingService`` with an in-process ``send``: the point of
running without a server is to dub *exactly* as a server would, and much of what a server does lives
at the wire — Socket.IO framing and binary attachments, the guide dialect's encoding, acks,
``max_inflight`` windows and backpressure events, auth. Driving the service directly would skip all
of that and need a second client that mimics the socket one; here the same ``dub_fragments`` client
talks to the same ``create_app`` over a real socket, so a file dubbed with no server and one dubbed
through ``--url`` take one code path, and every wire guarantee the tests check holds for both. The
cost is a loopback round trip per fragment (under a millisecond next to seconds of inference).

The port is ephemeral and bound to 127.0.0.1 only, and the app is built to require a one-off random
token (see ``private_token``), so another local user cannot slip fragments into it while it runs.
This module only runs an app it is given: building one belongs to the server layer (the CLI wires
the two), which keeps ``client`` and ``server`` independent as the layer contract asks.
"""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from aiohttp import web

LOOPBACK = "127.0.0.1"


def private_token() -> str:
    """A token no one else knows, for an app that only this process talks to."""
    return secrets.token_urlsafe(24)


@asynccontextmanager
async def local_runtime(app: web.Application) -> AsyncIterator[str]:
    """Serve ``app`` on an ephemeral loopback port; yield its URL; stop it (cleanly) on exit."""
    # Signals stay with the CLI (Ctrl-C cancels the dub); no access log, as in ``livedub serve``.
    runner = web.AppRunner(app, handle_signals=False, access_log=None)
    await runner.setup()
    try:
        site = web.TCPSite(runner, LOOPBACK, 0)
        await site.start()
        port = runner.addresses[0][1]
        yield f"http://{LOOPBACK}:{port}"
    finally:
        await runner.cleanup()
