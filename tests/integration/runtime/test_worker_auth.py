"""A worker that can set neither headers nor an auth payload authenticates with ``?token=`` in its URL.

Run against ``livedub serve`` as a real process with debug logging, because the promise is about
what reaches its logs: query strings end up in access logs, and the token must not.
"""

from __future__ import annotations

import asyncio
import os
import sys

import pytest
import socketio

from support.process import free_port, wait_ready

pytestmark = pytest.mark.slow
SECRET = "q-token-7f3a9c1e55b24d0e"


async def _connect(url: str) -> tuple[bool, list[object]]:
    client = socketio.AsyncClient(reconnection=False)
    refusals: list[object] = []
    client.on("connect_error", lambda data: refusals.append(data))
    try:
        await client.connect(url, transports=["websocket"])  # no headers, no auth: the worker's way
    except socketio.exceptions.ConnectionError:
        return False, refusals
    ready = await client.call(
        "stream:init",
        {"stream_id": "s1", "config": {"source_language": "en", "target_language": "es"}},
        timeout=30,
    )
    await client.disconnect()
    return "session_id" in ready, refusals


async def test_query_token_authenticates_and_never_reaches_the_logs(tmp_path):
    port = free_port()
    env = {**os.environ, "PORT": str(port), "LOG_LEVEL": "DEBUG", "AUTH_MODE": "required", "AUTH_TOKENS": SECRET}
    log_path = tmp_path / "serve.log"
    with log_path.open("wb") as log:
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "livedub.runtime.cli", "serve", env=env, stdout=log, stderr=log, cwd=tmp_path
        )
        url = f"http://127.0.0.1:{port}"
        try:
            await wait_ready(url)
            accepted, _ = await _connect(f"{url}?token={SECRET}")
            assert accepted
            refused, refusals = await _connect(f"{url}?token={SECRET}x")
            assert not refused and refusals and "AUTH_FAILED" in str(refusals[0])
            missing, _ = await _connect(url)
            assert not missing
            # A malformed request line is logged by aiohttp with the raw request, query included.
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.write(f"GET /socket.io/?EIO=4&transport=polling&token={SECRET} HTTP/9.9\r\nHost: x\r\n\r\n".encode())
            await writer.drain()
            await asyncio.wait_for(reader.read(), 10)
            writer.close()
        finally:
            proc.terminate()
            await asyncio.wait_for(proc.wait(), 60)
    logged = log_path.read_text()
    assert "connection refused" in logged and "stream ready" in logged  # the log really was written
    assert SECRET not in logged
