"""Worker authentication and limits, enforced before any work is queued."""

from __future__ import annotations

import numpy as np
import pytest
import socketio


async def test_tokens_are_required_and_checked(make_server, tmp_path):
    token_file = tmp_path / "tokens"
    token_file.write_text("# rotated by the Secret\nfile-token\n")
    server = await make_server(auth_mode="required", auth_tokens="alpha,beta", auth_tokens_file=token_file)

    for auth in (None, {"token": "wrong"}, {"token": ""}):
        with pytest.raises(socketio.exceptions.ConnectionError) as info:
            await server.connect(auth=auth)
        assert "token" in str(info.value)

    assert (await server.connect(auth={"token": "beta"})).client.connected
    assert (await server.connect(auth={"token": "file-token"})).client.connected
    client = socketio.AsyncClient(reconnection=False)
    await client.connect(server.url, headers={"Authorization": "Bearer alpha"}, transports=["websocket"])
    assert client.connected
    await client.disconnect()

    # Rotation: the file is re-read when it changes, no restart.
    token_file.write_text("rotated-token-with-new-length\n")
    assert (await server.connect(auth={"token": "rotated-token-with-new-length"})).client.connected
    with pytest.raises(socketio.exceptions.ConnectionError):
        await server.connect(auth={"token": "file-token"})


def test_auth_is_on_by_default_beyond_loopback():
    from livedub.runtime.config import Settings
    from livedub.runtime.server.auth import TokenAuthenticator

    assert not TokenAuthenticator(Settings(_env_file=None, host="127.0.0.1")).required
    with pytest.raises(ValueError, match="AUTH_TOKENS"):
        TokenAuthenticator(Settings(_env_file=None, host="0.0.0.0"))
    assert TokenAuthenticator(Settings(_env_file=None, host="0.0.0.0", auth_tokens="t")).required
    assert not TokenAuthenticator(Settings(_env_file=None, host="0.0.0.0", auth_mode="disabled")).required


async def test_connections_per_worker_and_streams_per_connection(make_server):
    server = await make_server(max_connections_per_worker=2, max_streams_per_connection=2)
    first = await server.connect(worker_id="w")
    await server.connect(worker_id="w")
    with pytest.raises(socketio.exceptions.ConnectionError) as info:
        await server.connect(worker_id="w")
    assert "MAX_CONNECTIONS_PER_WORKER" in str(info.value)

    assert (await first.init(stream_id="s1"))[0] == "stream:ready"
    assert (await first.init(stream_id="s2"))[0] == "stream:ready"
    kind, error = await first.init(stream_id="s3")
    assert kind == "error" and error["code"] == "LIMIT_EXCEEDED"


async def test_oversize_fragment_is_refused_before_queueing(make_server):
    server = await make_server(fragment_max_bytes=64 * 1024)
    client = await server.connect()
    await client.init()
    big = np.zeros(48_000, dtype=np.float32)  # 3 s = 96 kB of PCM
    await client.send("big", 0, big)
    await client.send("big-binary", 1, big, binary=True)
    results = await client.processed(2)
    assert [r["error"]["code"] for r in results] == ["INVALID_AUDIO", "INVALID_AUDIO"]
    assert all("FRAGMENT_MAX_BYTES" in r["error"]["message"] for r in results)
    assert server.app  # server still serving
    await client.send("small", 2, big[:8000])
    assert (await client.processed(3))[-1]["status"] == "success"


async def test_metrics_and_health_carry_no_secrets_or_content(make_server):
    import aiohttp

    server = await make_server(auth_mode="required", auth_tokens="super-secret-token", deepl_auth_key=None)
    client = await server.connect(auth={"token": "super-secret-token"}, stream_id="private-stream")
    await client.init()
    await client.send("private-fragment", 0, np.zeros(8000, dtype=np.float32))
    await client.processed(1)
    async with aiohttp.ClientSession() as http:
        for path in ("/metrics", "/health", "/ready"):
            async with http.get(server.url + path) as response:
                body = await response.text()
            for secret in ("super-secret-token", "private-stream", "private-fragment"):
                assert secret not in body, (path, secret)


async def test_pod_wide_inflight_limit_rejects_across_streams(make_server, shared_data):
    from support.data import fleurs

    speech = fleurs("fleurs-en-008")[0][: 3 * 16000]
    server = await make_server(max_pod_inflight=1)
    first = await server.connect(stream_id="a", worker_id="wa")
    second = await server.connect(stream_id="b", worker_id="wb")
    await first.init()
    await second.init()
    await first.send("busy", 0, speech, stream_id="a")
    await first.wait_for(lambda r: bool(r.of("fragment:ack")))  # admitted before the other stream sends
    await second.send("refused", 0, speech, stream_id="b")
    [refused] = await second.processed(1)
    assert refused["error"]["code"] == "BACKPRESSURE_EXCEEDED" and refused["error"]["retryable"] is True
    assert "capacity" in refused["error"]["message"]
    [done] = await first.processed(1)
    assert done["status"] in ("success", "partial")


# --- issue 11, items 9 and 11 --------------------------------------------------------------------


async def _refusal(url: str, **connect: object) -> dict:
    """Connect and return what the server sent in ``connect_error`` (the connection must be refused)."""
    client = socketio.AsyncClient(reconnection=False)
    received: list[dict] = []
    client.on("connect_error", lambda data: received.append(data))
    with pytest.raises(socketio.exceptions.ConnectionError):
        await client.connect(url, **{"transports": ["websocket"], **connect})  # type: ignore[arg-type]
    [data] = received
    return data


@pytest.mark.parametrize("transport", ["websocket", "polling"])
async def test_refusals_are_the_documented_code_and_message(make_server, transport):
    """Before: {"message": "{'code': 'AUTH_FAILED', ...}"}, a Python repr inside a string."""
    server = await make_server(auth_mode="required", auth_tokens="right", max_connections_per_worker=1)
    refused = await _refusal(server.url, auth={"token": "wrong"}, transports=[transport])
    assert refused["code"] == "AUTH_FAILED" and refused["message"] == "invalid worker token"
    assert refused["retryable"] is False
    assert refused["data"] == {"code": "AUTH_FAILED", "message": "invalid worker token", "retryable": False}

    await server.connect(worker_id="w", auth={"token": "right"})
    refused = await _refusal(server.url, headers={"X-Worker-ID": "w"}, auth={"token": "right"})
    assert refused["code"] == "LIMIT_EXCEEDED" and "MAX_CONNECTIONS_PER_WORKER" in refused["message"]
    assert refused["data"]["code"] == "LIMIT_EXCEEDED"


async def test_overlong_stream_id_is_refused_like_the_payload_path(make_server):
    """Before: an X-Stream-ID over 128 characters was cut to 128, while stream:init refused it."""
    server = await make_server()
    for connect in ({"headers": {"X-Stream-ID": "s" * 129}}, {"auth": {"stream_id": "s" * 129}}):
        refused = await _refusal(server.url, **connect)
        assert refused["code"] == "INVALID_PAYLOAD" and "X-Stream-ID" in refused["message"], refused
    client = await server.connect(stream_id="s" * 128)
    kind, ready = await client.init()
    assert kind == "stream:ready" and ready["stream_id"] == "s" * 128
    kind, error = await client.init(stream_id="p" * 129)  # the payload path, for comparison
    assert kind == "error" and error["code"] == "INVALID_PAYLOAD"


@pytest.mark.parametrize(
    ("payload_token", "header_token", "accepted"),
    [("wrong", "right", True), ("right", "wrong", True), ("wrong", "wrong", False), (None, "right", True)],
)
async def test_either_presented_credential_may_be_the_valid_one(make_server, payload_token, header_token, accepted):
    """Before: a wrong token in the auth payload overrode a correct Authorization header."""
    server = await make_server(auth_mode="required", auth_tokens="right")
    connect = {"headers": {"Authorization": f"Bearer {header_token}"}}
    if payload_token is not None:
        connect["auth"] = {"token": payload_token}
    if accepted:
        client = socketio.AsyncClient(reconnection=False)
        await client.connect(server.url, transports=["websocket"], **connect)  # type: ignore[arg-type]
        assert client.connected
        await client.disconnect()
    else:
        assert (await _refusal(server.url, **connect))["code"] == "AUTH_FAILED"


async def test_a_client_that_never_finishes_its_headers_is_dropped(make_server):
    """Slowloris: partial request headers used to hold a connection for aiohttp's 3630 s keep-alive."""
    import asyncio
    import time
    from urllib.parse import urlsplit

    server = await make_server(http_request_timeout_s=1.0)
    address = urlsplit(server.url)
    reader, writer = await asyncio.open_connection(address.hostname, address.port)
    started = time.monotonic()
    writer.write(b"GET /health HTTP/1.1\r\nHost: x\r\n")  # no blank line: the headers never end
    await writer.drain()
    for _ in range(3):  # keep dripping header lines, as slowloris does
        await asyncio.sleep(0.3)
        writer.write(b"X-Slow: 1\r\n")
        await writer.drain()
    assert await asyncio.wait_for(reader.read(), 10) == b""  # closed by the server, no response
    assert time.monotonic() - started < 5
    writer.close()

    # A normal request on a fresh connection is unaffected.
    import aiohttp

    async with aiohttp.ClientSession() as http, http.get(server.url + "/health") as response:
        assert response.status == 200


async def test_a_post_body_that_never_arrives_is_dropped(make_server):
    """A long-polling POST that announces a body and trickles it may not hold a handler forever."""
    import asyncio
    from urllib.parse import urlsplit

    server = await make_server(http_request_timeout_s=1.0)
    address = urlsplit(server.url)
    reader, writer = await asyncio.open_connection(address.hostname, address.port)
    writer.write(
        b"POST /socket.io/?EIO=4&transport=polling&sid=x HTTP/1.1\r\nHost: x\r\n"
        b"Content-Type: text/plain\r\nContent-Length: 100000\r\n\r\n" + b"4" * 100
    )
    await writer.drain()
    # aiohttp then lingers up to 10 s reading what is left of the body before it closes.
    answer = await asyncio.wait_for(reader.readline(), 5)
    assert answer.startswith(b"HTTP/1.1 408"), answer
    writer.close()
