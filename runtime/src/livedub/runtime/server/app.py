"""The aiohttp application: factory, start-up model loading, and graceful drain on SIGTERM.

aiohttp owns the lifecycle (its ``examples/background_tasks.py`` pattern): engines are loaded in a
``cleanup_ctx`` as a background task in a worker thread, so the port answers ``/health`` at once
and ``/ready`` turns 200 only when models are in memory. Tests pass pre-built engines to share one
set of loaded models across many app instances.

Drain: Kubernetes sends SIGTERM when the autoscaler scales a pool down. We keep listening (so
``/ready`` visibly turns 503 and a worker reconnecting gets a clear ``SHUTTING_DOWN``), let in-flight
fragments finish and be delivered, then stop, within ``DRAIN_TIMEOUT_S``.
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
from livedub.runtime.server.auth import TokenAuthenticator
from livedub.runtime.server.http import add_routes
from livedub.runtime.server.keys import SERVICE_KEY, SIO_KEY
from livedub.runtime.server.namespace import DubbingNamespace, make_sender
from livedub.runtime.server.service import DubbingService

log = logging.getLogger(__name__)

EngineLoader = Callable[[Settings], tuple[Engines, Any]]


def default_loader(settings: Settings) -> tuple[Engines, Any]:
    """Build the configured engines and the voice registry (blocking: runs in a thread)."""
    from livedub.runtime.engines.factory import build_engines
    from livedub.runtime.engines.voices import VoiceRegistry

    engines = build_engines(settings)
    voices = VoiceRegistry(settings.voices_file)
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
    service = DubbingService(settings, metrics, send=make_sender(sio))
    sio.register_namespace(DubbingNamespace(service, TokenAuthenticator(settings)))
    app = web.Application(client_max_size=settings.max_message_bytes)
    app[SERVICE_KEY] = service
    app[SIO_KEY] = sio
    sio.attach(app)
    add_routes(app)

    async def lifecycle(app: web.Application) -> AsyncIterator[None]:
        task: asyncio.Task[None] | None = None
        watcher = asyncio.create_task(service.placement.watch())
        if engines is not None:
            service.attach_engines(engines, voices)
            metrics.ready.set(1)
        else:
            task = asyncio.create_task(_load(service, loader))
        yield
        watcher.cancel()
        if task is not None and not task.done():
            task.cancel()
        service.close()

    app.cleanup_ctx.append(lifecycle)
    return app


async def _load(service: DubbingService, loader: EngineLoader) -> None:
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
    service.metrics.ready.set(1)
    log.info("engines ready", extra={"seconds": round(elapsed, 2), **engines.describe()})


async def serve(settings: Settings, app: web.Application | None = None) -> None:
    """Run until SIGTERM/SIGINT, then drain and stop."""
    app = app or create_app(settings)
    runner = web.AppRunner(app, handle_signals=False, access_log=None)
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
        service = app[SERVICE_KEY]
        log.info("draining", extra={"inflight": service.inflight_total, "timeout_s": settings.drain_timeout_s})
        finished = await service.drain(settings.drain_timeout_s)
        log.info("drained" if finished else "drain timeout: exiting with fragments in flight")
        # Disconnect packets queue behind every result already emitted, so clients receive
        # their last fragments before the socket closes.
        await app[SIO_KEY].shutdown()
    finally:
        await runner.cleanup()
