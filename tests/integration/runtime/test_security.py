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
