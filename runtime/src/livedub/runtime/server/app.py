"""The aiohttp application: factory, start-up model loading, and graceful drain on SIGTERM.

aiohttp owns the lifecycle (its ``examples/background_tasks.py`` pattern): engines are loaded in a
``cleanup_ctx`` as a background task in a worker thread, so the port answers ``/health`` at once
and ``/ready`` turns 200 only when models are in memory. Tests pass pre-built engines to share one
set of loaded models across many app instances.

Drain: Kubernetes sends SIGTERM when the autoscaler scales a pool down. We keep listening (so
``/ready`` visibly turns 503 and a worker reconnecting gets a clear ``SHUTTING_DOWN``), let in-flight
fragments finish and be delivered, close every client's connection, then stop, all within
``DRAIN_TIMEOUT_S``. Closing the connections ourselves matters: aiohttp's shutdown otherwise waits on
each idle websocket until engine.io's ping timeout (30 s measured, issue 11 item 7). They are closed
at the Engine.IO level, not with a Socket.IO disconnect, because clients treat a server-side
Socket.IO disconnect as final and would not reconnect to another replica.
"""

from __future__ import annotations

import asyncio
import logging
import signal
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import socketio
from aiohttp import web

from livedub.runtime.config import Settings
from livedub.runtime.engines.base import Engines
from livedub.runtime.errors import ModelLoadError
from livedub.runtime.metrics import Metrics
from livedub.runtime.protocol.dialects.base import Outbound
from livedub.runtime.server import captions, console
from livedub.runtime.server.auth import TokenAuthenticator
from livedub.runtime.server.caption_feed import CaptionFeed
from livedub.runtime.server.console_feed import ConsoleFeed
from livedub.runtime.server.http import add_routes
from livedub.runtime.server.keys import (
    AUTH_KEY,
    CAPTIONS_KEY,
    CONSOLE_KEY,
    REQUESTS_KEY,
    SERVICE_KEY,
    SIO_KEY,
    WARM_KEY,
)
from livedub.runtime.server.move import drop_transport, engineio_closer
from livedub.runtime.server.namespace import DubbingNamespace, make_sender
from livedub.runtime.server.service import DubbingService
from livedub.runtime.server.transport import attach
from livedub.runtime.server.warmup import warm_up

log = logging.getLogger(__name__)

EngineLoader = Callable[[Settings], tuple[Engines, Any]]


def default_loader(settings: Settings) -> tuple[Engines, Any]:
    """Build the configured engines and the voice registry (blocking: runs in a thread)."""
    from livedub.runtime.engines.factory import build_engines
    from livedub.runtime.engines.voices import VoiceRegistry

    engines = build_engines(settings)
    voices = VoiceRegistry(settings.voices_file, expected="voices_file" in settings.model_fields_set)
    return engines, voices


def create_app(
    settings: Settings,
    *,
    engines: Engines | None = None,
    voices: Any = None,
    loader: EngineLoader = default_loader,
) -> web.Application:
    metrics = Metrics()
    # Engine.IO's buffer is set above our own fragment limit so an oversize fragment gets a clear
    # error from us instead of a silent disconnect from engine.io (see NOTES.md).
    sio = socketio.AsyncServer(
        async_mode="aiohttp",
        cors_allowed_origins="*",
        max_http_buffer_size=settings.max_message_bytes,
        ping_interval=10,
        ping_timeout=20,
        logger=False,
        engineio_logger=False,
    )
    feed = ConsoleFeed()  # sees every outbound message, for /console
    caption_feed = CaptionFeed(settings.captions_feed_queue)  # and for /captions/{stream_id}

    def observe(sid: str, message: Outbound, dialect: str) -> None:
        feed.observe(sid, message, dialect)
        caption_feed.observe(sid, message, dialect)

    service = DubbingService(settings, metrics, send=make_sender(sio, observe))
    service.close_connection = engineio_closer(sio)  # a stream asked to move (server/move.py)
    authenticator = TokenAuthenticator(settings)
    sio.register_namespace(DubbingNamespace(service, authenticator, observe=observe))
    app = web.Application(client_max_size=settings.max_message_bytes)
    app[AUTH_KEY] = authenticator
    app[CONSOLE_KEY] = feed
    app[CAPTIONS_KEY] = caption_feed
    app[SERVICE_KEY] = service
    app[SIO_KEY] = sio
    app[WARM_KEY] = warm = asyncio.Event()
    service.placement.warmed = warm.is_set  # no new streams before the warm-up dub has run

    async def oversize(eio_sid: str, size: int) -> None:
        sid = sio.manager.sid_from_eio_sid(eio_sid, "/")
        if sid is not None:
            await service.message_too_large(sid, size)

    app[REQUESTS_KEY] = attach(
        app,
        sio,
        body_timeout_s=settings.http_request_timeout_s,
        max_body_bytes=settings.max_message_bytes,
        on_oversize=oversize,
    )
    add_routes(app)
    console.add_routes(app)
    captions.add_routes(app)

    async def lifecycle(app: web.Application) -> AsyncIterator[None]:
        task: asyncio.Task[None] | None = None
        watcher = asyncio.create_task(service.placement.watch())
        if engines is not None:
            # Pre-built engines (tests share one loaded, already used set): no warm-up needed.
            service.attach_engines(engines, voices)
            warm.set()
            metrics.ready.set(1)
        else:
            task = asyncio.create_task(_load(service, loader, warm))
        yield
        watcher.cancel()
        if task is not None and not task.done():
            task.cancel()
        service.close()

    app.cleanup_ctx.append(lifecycle)
    return app


async def _load(service: DubbingService, loader: EngineLoader, warm: asyncio.Event) -> None:
    started = time.perf_counter()
    log.info("loading engines")
    try:
        engines, voices = await asyncio.to_thread(loader, service.settings)
    except Exception as exc:
        # Stay alive but never ready: the pod's readiness probe keeps traffic away and the error
        # is in the log; crash-looping would hide it behind restarts.
        log.exception("engine loading failed", extra={"error": str(exc), "fatal": isinstance(exc, ModelLoadError)})
        return
    service.attach_engines(engines, voices)
    elapsed = time.perf_counter() - started
    service.metrics.model_load_seconds.set(elapsed)
    log.info("engines loaded", extra={"seconds": round(elapsed, 2), **engines.describe()})
    assert service.pipeline is not None
    warmed = await warm_up(engines, service.pipeline)
    service.metrics.warmup_seconds.set(warmed.seconds)
    log.info(
        "engines ready" if warmed.error is None else "engines ready, warm-up failed",
        extra={"seconds": round(warmed.seconds, 2), "target": warmed.target, "error": warmed.error, **warmed.stages_ms},
    )
    warm.set()
    service.metrics.ready.set(1)


def make_runner(app: web.Application, settings: Settings) -> web.AppRunner:
    """The aiohttp runner ``serve`` uses (tests start servers through it too).

    ``keepalive_timeout`` is also aiohttp's only header timeout: its timer starts when a connection
    opens (and after each request) and closes the connection if no complete request arrived by
    then, so a client that never finishes its headers (slowloris) is dropped. The shutdown timeout
    is short because ``serve`` has closed the Socket.IO connections before cleanup.
    """
    return web.AppRunner(
        app,
        handle_signals=False,
        access_log=None,
        keepalive_timeout=settings.http_request_timeout_s,
        shutdown_timeout=_CLEANUP_S,
    )


#: What the last steps of a drain (closing connections, stopping aiohttp) may take at most; the wait
#: for in-flight fragments gets the rest of DRAIN_TIMEOUT_S, so the whole drain stays inside it.
_CLEANUP_S = 1.0


async def disconnect_all(sio: socketio.AsyncServer, timeout_s: float) -> int:
    """Close every Engine.IO connection (both transports) after what was already queued for it.

    Closed as a lost transport, not with engine.io's CLOSE packet: a client takes that as final and
    would not reconnect, while here it should reconnect through the Service to another replica
    (server/move.py ``drop_transport``). What was queued before is sent first; a polling client that
    stopped polling is abandoned at ``timeout_s``.
    """
    sids = list(sio.eio.sockets)
    if not sids:
        return 0
    tasks = [asyncio.create_task(drop_transport(sio, sid)) for sid in sids]
    _, pending = await asyncio.wait(tasks, timeout=max(timeout_s, 0.01))
    for task in pending:
        task.cancel()
    return len(sids)


async def serve(settings: Settings, app: web.Application | None = None) -> None:
    """Run until SIGTERM/SIGINT, then drain and stop."""
    app = app or create_app(settings)
    runner = make_runner(app, settings)
    await runner.setup()
    site = web.TCPSite(runner, settings.host, settings.port)
    await site.start()
    log.info("listening", extra={"host": settings.host, "port": settings.port})
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    try:
        await stop.wait()
        started = loop.time()
        service = app[SERVICE_KEY]
        log.info("draining", extra={"inflight": service.inflight_total, "timeout_s": settings.drain_timeout_s})
        # Closing connections and stopping aiohttp get up to _CLEANUP_S each, out of the drain's budget.
        budget = settings.drain_timeout_s
        reserve = min(2 * _CLEANUP_S, budget / 2)
        finished = await service.drain(budget - reserve)
        log.info("drained" if finished else "drain timeout: exiting with fragments in flight")
        left = budget - (loop.time() - started) - _CLEANUP_S
        closed = await disconnect_all(app[SIO_KEY], min(left, reserve))
        # Let the websocket handlers see their clients' close before aiohttp stops reading (a close
        # handshake takes milliseconds; _CLEANUP_S also bounds a client connecting meanwhile).
        await app[REQUESTS_KEY].wait_idle(min(_CLEANUP_S, budget - (loop.time() - started) - _CLEANUP_S))
        await app[SIO_KEY].shutdown()
        log.info("connections closed", extra={"connections": closed, "seconds": round(loop.time() - started, 2)})
    finally:
        await runner.cleanup()
        log.info("stopped")
