"""``GET /captions/{stream_id}``: a live stream's caption cues as Server-Sent Events.

For consumers other than the stream's worker (a subtitle renderer, an archive, a web player): one
``cues`` event per delivered fragment whose stream asked for ``captions`` (both languages, speaker
label, times on the stream's clock; server/caption_feed.py), a comment every ``keepalive_s`` so
proxies keep the connection open, and one last event when the stream ends: ``end`` (``reason``:
``complete`` after ``stream:complete``, ``disconnected`` when its connection went away without it)
or ``dropped`` when this subscriber fell ``CAPTIONS_FEED_QUEUE`` events behind. ``id:`` is the
fragment's sequence number. An unknown (or already ended) stream is a 404.

Behind the same check as the Socket.IO connections and ``/console`` (server/auth.py): ``Authorization:
Bearer`` or ``?token=`` (a browser's ``EventSource`` can set no header).

A consumer that stops reading fills its socket, then the write below waits; the feed keeps filling
its bounded queue meanwhile and drops it when full, and a write that cannot finish within
``write_timeout_s`` closes the connection, so neither memory nor a handler is held for ever.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

from aiohttp import web

from livedub.runtime.server.caption_feed import CaptionFeed
from livedub.runtime.server.http_auth import refusal, unauthorised
from livedub.runtime.server.keys import CAPTIONS_KEY, SERVICE_KEY

KEEPALIVE_S = 15.0


def _frame(event: str, data: dict[str, Any], event_id: int | None = None) -> bytes:
    head = f"id: {event_id}\n" if event_id is not None else ""
    return f"{head}event: {event}\ndata: {json.dumps(data, ensure_ascii=False, separators=(',', ':'))}\n\n".encode()


def _stream_live(request: web.Request, stream_id: str) -> bool:
    """Whether a connection still holds the stream (a worker that vanished never sends stream:end)."""
    service = request.app[SERVICE_KEY]
    return any(stream_id in conn.streams for conn in service.connections.values())


async def captions_feed(request: web.Request) -> web.StreamResponse:
    reason = refusal(request)
    if reason is not None:
        return unauthorised(reason)
    feed: CaptionFeed = request.app[CAPTIONS_KEY]
    stream_id = request.match_info["stream_id"]
    subscriber = feed.subscribe(stream_id)
    if subscriber is None:
        return web.json_response(
            {
                "code": "STREAM_NOT_FOUND",
                "message": f"no live stream '{stream_id}' on this runtime",
                "retryable": False,
            },
            status=404,
        )
    settings = request.app[SERVICE_KEY].settings
    write_timeout_s = settings.captions_feed_write_timeout_s
    response = web.StreamResponse(
        headers={
            "Content-Type": "text/event-stream; charset=utf-8",
            "Cache-Control": "no-store",
            "X-Accel-Buffering": "no",  # nginx-style proxies: do not hold events back
        }
    )

    async def write(chunk: bytes) -> None:
        await asyncio.wait_for(response.write(chunk), write_timeout_s)

    try:
        await response.prepare(request)
        await write(b"retry: 3000\n\n")
        while True:
            get = asyncio.ensure_future(subscriber.queue.get())
            dropped = asyncio.ensure_future(subscriber.dropped.wait())
            done, _ = await asyncio.wait({get, dropped}, timeout=KEEPALIVE_S, return_when=asyncio.FIRST_COMPLETED)
            get.cancel()
            dropped.cancel()
            if subscriber.dropped.is_set():
                # Its backlog is stale by now: say why it ends instead of sending it.
                await write(_frame("dropped", {"stream_id": stream_id, "queue": feed.max_queue}))
                break
            if get in done:
                event, data = get.result()
                await write(_frame(event, data, data.get("sequence_number")))
                if event == "end":
                    break
            elif not _stream_live(request, stream_id):
                feed.forget(stream_id, "disconnected")
            else:
                await write(b": keepalive\n\n")
    except (TimeoutError, ConnectionResetError):
        # A consumer that stopped reading: close at once rather than wait for the socket.
        if request.transport is not None:
            request.transport.abort()
    finally:
        feed.unsubscribe(subscriber)
    return response


def add_routes(app: web.Application) -> None:
    app.router.add_get("/captions/{stream_id}", captions_feed)
