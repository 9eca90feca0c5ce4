"""Integration fixtures: real embedded engines (loaded once), a real server on loopback, a client.

The server is the production app (``create_app``) on a real TCP port; the client is
python-socketio's ``AsyncClient`` speaking the wire protocol. Engines are built once per session
through the same factory ``livedub serve`` uses, so tests exercise the shipped models.
"""

from __future__ import annotations

import asyncio
import base64
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pytest
import socketio
from aiohttp import web

from livedub.runtime.config import Settings
from livedub.runtime.engines.base import Engines
from livedub.runtime.server.app import create_app, make_runner

EVENTS = (
    "stream:ready",
    "fragment:ack",
    "fragment:processed",
    "backpressure",
    "error",
    "stream:complete",
    "stream:state",
)


@pytest.fixture(scope="session")
def engines() -> Engines:
    from livedub.runtime.engines.factory import build_engines

    return build_engines(Settings(_env_file=None))


@dataclass
class Recorder:
    """A python-socketio client that records every server event and can wait for conditions."""

    client: socketio.AsyncClient
    events: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    changed: asyncio.Condition = field(default_factory=asyncio.Condition)

    def of(self, name: str) -> list[dict[str, Any]]:
        return [data for event, data in self.events if event == name]

    async def wait_for(self, predicate: Callable[[Recorder], bool], timeout: float = 120) -> None:
        async with self.changed:
            await asyncio.wait_for(self.changed.wait_for(lambda: predicate(self)), timeout)

    async def processed(self, count: int, timeout: float = 120) -> list[dict[str, Any]]:
        await self.wait_for(lambda r: len(r.of("fragment:processed")) >= count, timeout)
        return self.of("fragment:processed")

    async def init(self, **fields: Any) -> tuple[str, dict[str, Any]]:
        """Send ``stream:init``; return ("stream:ready" | "error", payload)."""
        start = len(self.events)

        def answered(r: Recorder) -> bool:
            return any(name in ("stream:ready", "error") for name, _ in r.events[start:])

        await self.client.emit("stream:init", {"source_language": "en", "target_language": "es", **fields})
        await self.wait_for(answered, 30)
        return next((n, d) for n, d in self.events[start:] if n in ("stream:ready", "error"))

    async def send(
        self,
        fragment_id: str,
        sequence: int,
        audio: np.ndarray,
        *,
        binary: bool = False,
        rate: int = 16000,
        **extra: Any,
    ) -> None:
        pcm = (np.clip(audio, -1, 1) * 32767).astype("<i2").tobytes()
        await self.client.emit(
            "fragment:data",
            {
                "fragment_id": fragment_id,
                "stream_id": extra.pop("stream_id", None) or "stream-1",
                "sequence_number": sequence,
                "timestamp": sequence * 6000,
                "audio": pcm if binary else base64.b64encode(pcm).decode(),
                "sample_rate": rate,
                "channels": 1,
                "format": "pcm_s16le",
                "duration_ms": int(len(audio) * 1000 / rate),
                **extra,
            },
        )


@dataclass
class Server:
    url: str
    app: web.Application
    connect: Callable[..., Any]


async def _start(app: web.Application, settings: Settings) -> tuple[web.AppRunner, str]:
    # The runner ``livedub serve`` uses: same timeouts (slowloris) as production.
    runner = make_runner(app, settings)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    return runner, f"http://127.0.0.1:{port}"


@pytest.fixture
async def make_server(engines: Engines) -> AsyncIterator[Callable[..., Any]]:
    """Factory: ``await make_server(**settings)`` starts a server, returns a ``Server``."""
    runners: list[web.AppRunner] = []
    clients: list[socketio.AsyncClient] = []

    async def factory(voices: Any = None, engines_override: Engines | None = None, **overrides: Any) -> Server:
        settings = Settings(_env_file=None, **overrides)
        app = create_app(settings, engines=engines_override or engines, voices=voices)
        runner, url = await _start(app, settings)
        runners.append(runner)

        async def connect(
            stream_id: str | None = "stream-1",
            worker_id: str = "worker-1",
            transports: tuple[str, ...] = ("websocket",),
            reconnecting: bool = False,
            **kwargs: Any,
        ) -> Recorder:
            # ``reconnecting``: a worker that relies on its client's own reconnection (fast, for tests);
            # every (re)connect is recorded as a "connect" event.
            client = socketio.AsyncClient(
                reconnection=reconnecting, reconnection_delay=0.2, reconnection_delay_max=0.5, randomization_factor=0
            )
            recorder = Recorder(client)

            async def connected() -> None:
                async with recorder.changed:
                    recorder.events.append(("connect", {}))
                    recorder.changed.notify_all()

            client.on("connect", connected)
            for name in EVENTS:

                async def handler(data: Any, _name: str = name) -> None:
                    async with recorder.changed:
                        recorder.events.append((_name, data))
                        recorder.changed.notify_all()

                client.on(name, handler)
            refusal: list[Any] = []
            client.on("connect_error", lambda data: refusal.append(data))
            headers = {"X-Worker-ID": worker_id, **({"X-Stream-ID": stream_id} if stream_id else {})}
            try:
                await client.connect(url, headers=headers, transports=list(transports), **kwargs)
            except socketio.exceptions.ConnectionError as exc:
                # The server's reason arrives in connect_error; surface it in the exception.
                raise socketio.exceptions.ConnectionError(f"{exc}: {refusal}") from exc
            clients.append(client)
            return recorder

        return Server(url, app, connect)

    yield factory
    for client in clients:
        if client.connected:
            await client.disconnect()
    for runner in runners:
        await runner.cleanup()
