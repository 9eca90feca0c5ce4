"""Engine.IO's HTTP endpoint on aiohttp, with the long-polling body read in full.

engine.io's aiohttp driver hands the request's ``StreamReader`` to the polling socket, which calls
``read(Content-Length)`` once. ``StreamReader.read(n)`` returns what is buffered, not ``n`` bytes, so a
POST larger than one TCP read (a 6 s fragment: 192 kB binary, 256 kB base64) arrived cut and
vanished in a JSON or base64 decode error, with no answer to the client (issue 11, item 1). We
route the endpoint ourselves: a POST body is read completely (``request.read()``, which also enforces
``client_max_size``) under a deadline, then engine.io sees the request with that body in memory.
GET (long-poll and the websocket upgrade) and OPTIONS pass through untouched.

A POST over ``MAX_MESSAGE_BYTES`` is read and dropped chunk by chunk (memory: one chunk), the
connection is told why with a typed ``error`` (``LIMIT_EXCEEDED``) and the POST is answered ``ok``, so
the stream and its other fragments go on. aiohttp's own answer, a bare 413, made python-engineio's
client drop the connection with nothing on the wire saying why. Past :data:`DISCARD_MAX_FACTOR` times
the limit the reading stops: the typed error is still sent and the POST gets a 413.

Owning the route also lets the drain wait for the requests in progress, above all the websocket
handlers that end once each client answers the close: aiohttp's shutdown ignores whatever a client
sends after it starts, so a websocket still closing then held the exit for two shutdown timeouts.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import socketio
from aiohttp import web
from engineio.payload import Payload

#: engine.io's endpoint; python-socketio and socket.io-client default to it.
ENGINEIO_PATH = "/socket.io/"
#: Packets one long-polling POST may carry. A polling client batches whatever it emitted since its
#: last POST, and a binary fragment is two packets: engine.io's default of 16 dropped a burst of
#: nine fragments whole, unanswered, with the connection kept up (found by this issue's campaign).
#: Memory stays bounded by the body limit (MAX_MESSAGE_BYTES), not by this count.
MAX_PACKETS_PER_POST = 1024
#: How much of an oversize POST is read and dropped to keep its connection (a larger one is cut off).
DISCARD_MAX_FACTOR = 16
_CHUNK = 64 * 1024

#: Told the Engine.IO session id and the size of a message it sent over the limit.
OnOversize = Callable[[str, int], Awaitable[None]]


@dataclass(frozen=True, slots=True)
class Oversize:
    """A POST body over the limit: how many bytes were read (all of it unless ``cut``) and dropped."""

    size: int
    cut: bool


async def read_body(request: web.Request, limit: int) -> bytes | Oversize:
    """The whole POST body, or :class:`Oversize` when it is over ``limit`` (then nothing is kept)."""
    declared = request.content_length
    if declared is not None and declared <= limit:
        return await request.read()
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.content.iter_chunked(_CHUNK):
        size += len(chunk)
        if size <= limit:
            chunks.append(chunk)
            continue
        chunks.clear()
        if size > limit * DISCARD_MAX_FACTOR:
            return Oversize(size, cut=True)
    return b"".join(chunks) if size <= limit else Oversize(size, cut=False)


class _Body:
    """The part of ``StreamReader`` engine.io's polling socket uses, over bytes already read."""

    def __init__(self, data: bytes) -> None:
        self._data = data
        self._offset = 0

    async def read(self, n: int = -1) -> bytes:
        end = len(self._data) if n < 0 else min(len(self._data), self._offset + n)
        chunk = self._data[self._offset : end]
        self._offset = end
        return chunk


class _BufferedRequest:
    """The aiohttp request as engine.io's driver reads it, with ``content`` replaced by the full body.

    Everything else (method, headers, query, path) is the real request's; only a POST is wrapped, so
    the websocket upgrade always sees the real request object.
    """

    def __init__(self, request: web.Request, body: bytes) -> None:
        self._request = request
        self.content = _Body(body)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._request, name)


class Requests:
    """Engine.IO requests in progress (a websocket connection is one long request)."""

    def __init__(self) -> None:
        self.active = 0
        self._idle = asyncio.Event()
        self._idle.set()

    def started(self) -> None:
        self.active += 1
        self._idle.clear()

    def finished(self) -> None:
        self.active -= 1
        if self.active == 0:
            self._idle.set()

    async def wait_idle(self, timeout_s: float) -> bool:
        """True once no request is in progress; False if some still are after ``timeout_s``."""
        try:
            await asyncio.wait_for(self._idle.wait(), max(timeout_s, 0.0))
        except TimeoutError:
            return False
        return True


def attach(
    app: web.Application,
    sio: socketio.AsyncServer,
    *,
    body_timeout_s: float,
    max_body_bytes: int,
    on_oversize: OnOversize,
) -> Requests:
    """Serve Socket.IO on ``app`` (instead of ``sio.attach(app)``) with complete POST bodies.

    ``body_timeout_s`` bounds how long a client may take to send a POST body: a client that
    announces a large ``Content-Length`` and trickles it would otherwise hold a handler forever.
    ``on_oversize`` tells a live session that one of its POSTs was over ``max_body_bytes``.
    """

    # python-engineio's documented knob; it is process-wide (a class attribute).
    Payload.max_decode_packets = max(Payload.max_decode_packets, MAX_PACKETS_PER_POST)
    requests = Requests()

    async def handle(request: web.Request) -> web.StreamResponse:
        requests.started()
        try:
            return await _handle(request)
        finally:
            requests.finished()

    async def _handle(request: web.Request) -> web.StreamResponse:
        if request.method == "POST":
            try:
                body = await asyncio.wait_for(read_body(request, max_body_bytes), body_timeout_s)
            except TimeoutError:
                raise web.HTTPRequestTimeout(text="request body not received in time") from None
            if isinstance(body, Oversize):
                return await _oversize(request, body)
            response: web.StreamResponse = await sio.handle_request(_BufferedRequest(request, body))
            return response
        response = await sio.handle_request(request)
        return response

    async def _oversize(request: web.Request, body: Oversize) -> web.StreamResponse:
        eio_sid = request.query.get("sid", "")
        if eio_sid not in sio.eio.sockets:  # no session to tell: the plain HTTP answer
            raise web.HTTPRequestEntityTooLarge(max_size=max_body_bytes, actual_size=body.size)
        await on_oversize(eio_sid, body.size)
        if body.cut:
            raise web.HTTPRequestEntityTooLarge(max_size=max_body_bytes, actual_size=body.size)
        return web.Response(text="ok")  # what engine.io answers a POST it took

    app.router.add_get(ENGINEIO_PATH, handle)
    app.router.add_post(ENGINEIO_PATH, handle)
    app.router.add_route("OPTIONS", ENGINEIO_PATH, handle)
    return requests
