"""Property-based: whatever a client sends, the server answers with the documented error and lives.

Hypothesis generates every client event with wrong types, missing and unknown fields, broken base64,
odd PCM byte counts, NaN and huge numbers, unicode ids, and events out of order. The server and a
python-socketio client run in a background event loop for the whole module (hypothesis drives
synchronous examples); after every example the server must still be healthy, and at the end a
well-behaved stream on the same server must still dub normally.
"""

from __future__ import annotations

import asyncio
import base64
import threading
from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest
import socketio
from aiohttp import web
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from livedub.runtime.config import Settings
from livedub.runtime.server.app import create_app
from livedub.runtime.server.keys import SERVICE_KEY

pytestmark = pytest.mark.slow

ERROR_CODES = {
    "INVALID_PAYLOAD",
    "INVALID_AUDIO",
    "STREAM_NOT_INITIALIZED",
    "UNSUPPORTED_LANGUAGE",
    "INVALID_VOICE_PROFILE",
    "LIMIT_EXCEEDED",
    "STREAM_PAUSED",
    "STREAM_ENDED",
}

junk = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=40),
    st.binary(max_size=64),
    st.lists(st.integers(), max_size=3),
    st.dictionaries(st.text(max_size=5), st.integers(), max_size=2),
)
audio_values = st.one_of(
    junk,
    st.binary(max_size=97),  # odd and even byte counts as a binary attachment
    st.binary(max_size=97).map(lambda b: base64.b64encode(b).decode()),
    st.binary(max_size=40).map(lambda b: base64.b64encode(b).decode()[:-1]),  # truncated base64
    st.just(""),
)
ids = st.one_of(st.text(min_size=0, max_size=140), junk)
fragment_payloads = st.fixed_dictionaries(
    {},
    optional={
        "fragment_id": ids,
        "stream_id": ids,
        "sequence_number": st.one_of(st.integers(-5, 2**60), junk),
        "timestamp": junk,
        "audio": audio_values,
        "sample_rate": st.one_of(st.sampled_from([8000, 16000, 0, -1, 10**9]), junk),
        "channels": st.one_of(st.integers(-1, 10), junk),
        "format": st.one_of(st.sampled_from(["pcm_s16le", "wav", "m4a", "xyz"]), junk),
        "duration_ms": junk,
        "unknown_field": junk,
    },
)
init_payloads = st.one_of(
    junk,
    st.fixed_dictionaries(
        {},
        optional={
            "source_language": st.one_of(st.sampled_from(["en", "es", "zz", "EN", ""]), junk),
            "target_language": st.one_of(st.sampled_from(["es", "fr", "xx"]), junk),
            "voice_profile": st.one_of(st.text(max_size=20), junk),
            "sample_rate_hz": junk,
            "channels": junk,
            "format": junk,
            "chunk_duration_ms": junk,
            "stream_id": ids,
            "extra": junk,
        },
    ),
)
events = st.one_of(
    st.tuples(st.just("fragment:data"), st.one_of(fragment_payloads, junk)),
    st.tuples(st.just("stream:init"), init_payloads),
    st.tuples(
        st.sampled_from(["stream:pause", "stream:resume", "stream:end"]),
        st.one_of(junk, st.fixed_dictionaries({"stream_id": ids})),
    ),
    st.tuples(st.text(min_size=1, max_size=20).filter(lambda e: e not in ("connect", "disconnect", "message")), junk),
)


class Harness:
    """A server and a client on a private event loop thread."""

    def __init__(self, engines: Any) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        self.engines = engines
        self.received: list[tuple[str, Any]] = []
        self.run(self._start())

    def run(self, coro: Any, timeout: float = 60) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    async def _start(self) -> None:
        self.app = create_app(Settings(_env_file=None, max_streams_per_connection=64), engines=self.engines)
        self.runner = web.AppRunner(self.app)
        await self.runner.setup()
        site = web.TCPSite(self.runner, "127.0.0.1", 0)
        await site.start()
        self.url = f"http://127.0.0.1:{site._server.sockets[0].getsockname()[1]}"  # type: ignore[union-attr]
        self.client = socketio.AsyncClient(reconnection=False)
        for name in (
            "fragment:ack",
            "fragment:processed",
            "error",
            "stream:ready",
            "stream:complete",
            "stream:state",
            "backpressure",
        ):
            self.client.on(name, lambda data, _n=name: self.received.append((_n, data)))
        await self.client.connect(self.url, headers={"X-Stream-ID": "fuzz"}, transports=["websocket"])

    async def call(self, event: str, payload: Any) -> Any:
        # ``call`` waits for the handler's acknowledgement: every handler must answer.
        return await self.client.call(event, payload, timeout=30)

    async def _stop(self) -> None:
        await self.client.disconnect()
        await self.runner.cleanup()
        leftovers = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
        for task in leftovers:
            task.cancel()
        await asyncio.gather(*leftovers, return_exceptions=True)

    def close(self) -> None:
        self.run(self._stop())
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(5)


@pytest.fixture(scope="module")
def harness(engines) -> Iterator[Harness]:
    h = Harness(engines)
    yield h
    h.close()


def _settle(h: Harness) -> None:
    service = h.app[SERVICE_KEY]

    async def wait() -> None:
        for _ in range(400):
            if service.inflight_total == 0:
                return
            await asyncio.sleep(0.025)
        raise AssertionError("fragments stuck in flight")

    h.run(wait())


@settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow]
)
@given(event=events)
def test_any_event_gets_an_answer_and_the_server_survives(harness: Harness, event: tuple[str, Any]) -> None:
    name, payload = event
    before = len(harness.received)
    try:
        answer = harness.run(harness.call(name, payload))
    except socketio.exceptions.BadNamespaceError:
        pytest.fail("the server dropped the connection")
    assert answer is None or isinstance(answer, dict)
    if isinstance(answer, dict) and answer.get("status") in ("error", "rejected"):
        assert answer["error"]["code"] in ERROR_CODES | {"BACKPRESSURE_EXCEEDED", "SHUTTING_DOWN"}
        assert isinstance(answer["error"]["retryable"], bool)
    _settle(harness)
    if name == "fragment:data" and isinstance(payload, dict):
        fid = payload.get("fragment_id")
        if isinstance(fid, str) and 0 < len(fid.strip()) <= 128 and answer and answer.get("status") != "duplicate":
            new = harness.received[before:]
            # Valid payloads have their ids whitespace-stripped; rejected ones are echoed as sent.
            assert any(n == "fragment:processed" and d.get("fragment_id") in (fid, fid.strip()) for n, d in new), new
    assert harness.client.connected


def test_a_normal_stream_still_dubs_after_the_fuzzing(harness: Harness, shared_data) -> None:
    from support.data import fleurs

    audio, _ = fleurs("fleurs-en-006")
    pcm = (audio[: 4 * 16000] * 32767).astype("<i2").tobytes()

    async def scenario() -> dict[str, Any]:
        client = socketio.AsyncClient(reconnection=False)
        done: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        client.on("fragment:processed", lambda d: done.done() or done.set_result(d))
        await client.connect(harness.url, headers={"X-Stream-ID": "clean"}, transports=["websocket"])
        await client.call("stream:init", {"source_language": "en", "target_language": "es"}, timeout=30)
        await client.emit("fragment:data", {"fragment_id": "ok", "sequence_number": 0, "audio": pcm})
        result = await asyncio.wait_for(done, 120)
        await client.disconnect()
        return result

    result = harness.run(scenario(), timeout=180)
    assert result["status"] in ("success", "partial") and result["transcript"]
    assert np.frombuffer(result["dubbed_audio"], dtype="<i2").size == 4 * 16000


# --- long-polling (issue 11, item 1) -------------------------------------------------------------


@pytest.mark.parametrize("binary", [False, True], ids=["base64", "binary"])
async def test_long_polling_carries_a_six_second_fragment(make_server, shared_data, binary: bool) -> None:
    """A 6 s 16 kHz fragment is 192,000 bytes of PCM (256 kB as base64): one POST larger than a TCP
    read. engine.io's driver read only what was buffered and the fragment vanished without an answer."""
    from support.data import fleurs

    server = await make_server()
    client = await server.connect(transports=("polling",))
    assert client.client.transport() == "polling"
    assert (await client.init())[0] == "stream:ready"
    speech = fleurs("fleurs-en-006")[0][: 6 * 16000]
    await client.send("long-poll", 0, speech, binary=binary)
    [result] = await client.processed(1)
    assert [a["status"] for a in client.of("fragment:ack")] == ["queued"]
    assert result["status"] in ("success", "partial") and result["transcript"]
    audio = result["dubbed_audio"]
    pcm = audio if binary else base64.b64decode(audio)
    # Speech too long even at the fastest tempo is kept whole (pipeline/duration.py): near, not exact.
    assert result["metadata"]["original_duration_ms"] == 6000
    assert abs(len(pcm) - 192_000) <= 0.1 * 192_000
    assert client.client.connected


# --- decompression bombs (issue 11, item 5) ------------------------------------------------------

#: What decoding one fragment may add to a process's peak memory (README, Security). Measured
#: 26-28 MiB: the mono float32 of the longest accepted fragment (30 s at 192 kHz) plus one block.
DECODE_PEAK_BOUND_MIB = 48


@pytest.mark.parametrize("variant", ["declared", "unknown", "longest"])
def test_decoding_a_bomb_stays_within_the_documented_memory_bound(variant: str) -> None:
    """5 min of 192 kHz x 8-channel silence is a 476 kB FLAC; decoded whole it is 1.8 GB of float32
    (RSS rose from 1.2 to 3.2 GiB before the limit was checked). Now the header is checked first,
    and a FLAC without a length stops at the limit while decoding."""
    import json
    import os
    import subprocess
    import sys
    from pathlib import Path

    tests = Path(__file__).resolve().parents[2]
    path = os.pathsep.join(p for p in (str(tests), os.environ.get("PYTHONPATH", "")) if p)
    result = subprocess.run(
        [sys.executable, "-m", "support.decode_rss", variant],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=tests,
        env={**os.environ, "PYTHONPATH": path},
    )
    assert result.returncode == 0, result.stderr[-2000:]
    measured = json.loads(result.stdout)
    assert measured["code"] == (None if variant == "longest" else "INVALID_AUDIO")
    assert measured["peak_growth_mib"] <= DECODE_PEAK_BOUND_MIB, measured
    if variant != "longest":
        assert measured["bytes"] < 500_000  # under every packet limit: only decoding can stop it


async def test_a_bomb_fragment_is_refused_and_the_stream_goes_on(make_server) -> None:
    from support.decode_rss import bomb

    server = await make_server()
    client = await server.connect()
    await client.init()
    data = bomb(unknown_length=True)
    await client.client.emit(
        "fragment:data",
        {"fragment_id": "bomb", "stream_id": "stream-1", "sequence_number": 0, "audio": data, "format": "flac"},
    )
    [result] = await client.processed(1)
    assert result["status"] == "failed" and result["error"]["code"] == "INVALID_AUDIO"
    assert "FRAGMENT_MAX_DURATION_MS" in result["error"]["message"]
    await client.send("after", 1, np.zeros(16000, np.float32), binary=True)
    assert (await client.processed(2))[-1]["status"] == "success"


async def test_a_burst_of_fragments_over_long_polling_is_answered_in_full(make_server) -> None:
    """A polling client sends everything emitted since its last POST in one body; engine.io refused
    bodies of more than 16 packets (8 binary fragments), silently dropping every fragment in them."""
    server = await make_server()
    client = await server.connect(transports=("polling",))
    await client.init()
    silence = np.zeros(8000, np.float32)
    await asyncio.gather(*(client.send(f"burst-{i}", i, silence, binary=True) for i in range(40)))
    results = await client.processed(40, timeout=120)
    assert sorted(r["fragment_id"] for r in results) == sorted(f"burst-{i}" for i in range(40))
    # Past the per-stream limit some are refused, retryably: answered either way, never lost.
    assert {r["status"] for r in results} <= {"success", "failed"}
    assert all(r["error"]["code"] == "BACKPRESSURE_EXCEEDED" for r in results if r["status"] == "failed")


# --- a message over MAX_MESSAGE_BYTES on long-polling ---------------------------------------------

#: A small wire limit keeps these tests light: 256 kB messages, fragments up to 64 kB decoded.
SMALL_LIMITS = {"max_message_bytes": 256 * 1024, "fragment_max_bytes": 64 * 1024}


async def test_an_oversize_polling_post_gets_a_typed_error_and_the_stream_goes_on(make_server) -> None:
    """aiohttp answered such a POST with a bare 413, python-engineio's client then dropped the
    connection, and nothing on the wire said why (the worker saw its fragments time out)."""
    server = await make_server(**SMALL_LIMITS)
    client = await server.connect(transports=("polling",))
    assert (await client.init())[0] == "stream:ready"
    await client.send("before", 0, np.zeros(8000, np.float32), binary=True)
    await client.processed(1)
    await client.send("huge", 1, np.zeros(160_000, np.float32), binary=True)  # 320 kB of PCM
    await client.wait_for(lambda r: bool(r.of("error")), 30)
    [error] = client.of("error")
    assert error["code"] == "LIMIT_EXCEEDED" and error["retryable"] is False, error
    assert "MAX_MESSAGE_BYTES" in error["message"] and "FRAGMENT_MAX_BYTES" in error["message"]
    assert client.client.connected and client.client.transport() == "polling"
    await client.send("after", 2, np.zeros(8000, np.float32), binary=True)
    results = await client.processed(2, timeout=60)
    assert [r["fragment_id"] for r in results] == ["before", "after"]
    assert results[-1]["status"] == "success"


async def test_a_post_far_over_the_limit_is_cut_off_with_the_error_queued(make_server) -> None:
    """Past 16x the limit the body is not read to its end: 413, and the session still learns why.
    Spoken as raw Engine.IO v4 over HTTP, the way any polling client does."""
    import json

    import aiohttp

    server = await make_server(**SMALL_LIMITS)
    endpoint = f"{server.url}/socket.io/?EIO=4&transport=polling"
    async with aiohttp.ClientSession() as http:
        async with http.get(endpoint, headers={"X-Worker-ID": "raw"}) as response:
            handshake = json.loads((await response.text())[1:])  # "0{...}": the OPEN packet
        session = f"{endpoint}&sid={handshake['sid']}"
        async with http.post(session, data="40") as response:  # Socket.IO CONNECT to "/"
            assert response.status == 200
        async with http.get(session) as response:
            assert (await response.text()).startswith("40")  # connected
        body = b"4" + b"x" * (5 * 1024 * 1024)  # 5 MiB: 20x the limit
        async with http.post(session, data=body) as response:
            assert response.status == 413
        async with http.get(session) as response:
            packets = (await response.text()).split("\x1e")
    event = next(json.loads(p[2:]) for p in packets if p.startswith("42"))
    assert event[0] == "error" and event[1]["code"] == "LIMIT_EXCEEDED", event
    assert "262144 bytes" in event[1]["message"] and "read" in event[1]["message"], event


async def test_an_oversize_websocket_message_closes_the_socket_and_a_reconnecting_worker_goes_on(make_server) -> None:
    """On websocket the limit is aiohttp's (close 1009, "message too big"): nothing can be said on a
    socket that is closing, so the worker's own reconnection is what carries the stream on."""
    server = await make_server(**SMALL_LIMITS)
    client = await server.connect(reconnecting=True)
    assert (await client.init())[0] == "stream:ready"
    await client.send("huge", 0, np.zeros(160_000, np.float32), binary=True)  # 320 kB > 256 kB
    await client.wait_for(lambda r: len(r.of("connect")) >= 2, 30)  # dropped, then back by itself
    await client.wait_for(lambda r: r.client.connected, 30)
    assert (await client.init())[0] == "stream:ready"
    await client.send("after", 1, np.zeros(8000, np.float32), binary=True)
    [result] = await client.processed(1, timeout=60)
    assert result["fragment_id"] == "after" and result["status"] == "success"
