"""``livedub serve`` and ``livedub dub`` as real processes: start-up, readiness, the dub client, drain."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
from pathlib import Path

import aiohttp
import numpy as np
import pytest
import socketio
import soundfile as sf

from support.data import FLEURS, fleurs
from support.process import free_port, wait_ready

pytestmark = pytest.mark.slow
LIVEDUB = [sys.executable, "-m", "livedub.runtime.cli"]


@pytest.fixture
async def served(tmp_path):
    port = free_port()
    env = {
        **os.environ,
        "PORT": str(port),
        "LOG_FORMAT": "json",
        "ARTIFACTS_ENABLED": "true",
        "ARTIFACTS_DIR": str(tmp_path / "artifacts"),
        "DRAIN_TIMEOUT_S": "60",
    }
    log = (tmp_path / "serve.log").open("wb")
    proc = await asyncio.create_subprocess_exec(*LIVEDUB, "serve", env=env, stdout=log, stderr=log, cwd=tmp_path)
    url = f"http://127.0.0.1:{port}"
    try:
        await wait_ready(url)
        yield proc, url, tmp_path
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
        log.close()


async def test_livedub_dub_cli_returns_spanish_speech_of_the_same_length(served, shared_data):
    _, url, tmp_path = served
    out = tmp_path / "dubbed.wav"
    dub = await asyncio.create_subprocess_exec(
        *LIVEDUB,
        "dub",
        str(FLEURS / "fleurs-en-000.ogg"),
        "--to",
        "es",
        "-o",
        str(out),
        "--url",
        url,
        "-q",
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    _, stderr = await asyncio.wait_for(dub.communicate(), 240)
    assert dub.returncode == 0, stderr.decode()[-2000:]
    original, _ = fleurs("fleurs-en-000")
    dubbed, rate = sf.read(out, dtype="float32")
    assert rate == 16000
    assert abs(len(dubbed) - len(original)) / len(original) <= 0.05
    assert np.sqrt(np.mean(dubbed**2)) > 0.01
    report = json.loads(out.with_suffix(".json").read_text())
    assert report["summary"]["in_order"] and report["summary"]["failed"] == 0
    assert all(f["translated_text"] for f in report["fragments"] if f["transcript"])
    # Artifact logging was switched on: one folder per fragment with audio, texts and timings.
    artifacts = sorted((tmp_path / "artifacts").rglob("fragment.json"))
    assert len(artifacts) == len(report["fragments"])
    record = json.loads(artifacts[0].read_text())
    assert {"transcript", "translated_text", "stage_timings"} <= set(record)
    assert (artifacts[0].parent / "input.wav").exists() and (artifacts[0].parent / "dubbed.wav").exists()
    # Structured logs are JSON lines carrying the stream and fragment ids.
    lines = [json.loads(line) for line in (tmp_path / "serve.log").read_text().splitlines() if line.startswith("{")]
    processed = [entry for entry in lines if entry.get("msg") == "fragment processed"]
    assert processed and all(entry.get("stream_id") and entry.get("fragment_id") for entry in processed)


async def test_sigterm_drains_in_flight_fragments_then_exits(served, shared_data):
    proc, url, _ = served
    audio, _ = fleurs("fleurs-en-004")
    client = socketio.AsyncClient(reconnection=False)
    processed: list[dict] = []
    errors: list[dict] = []
    delivered: list[float] = []

    def on_processed(data: dict) -> None:
        processed.append(data)
        delivered.append(asyncio.get_running_loop().time())

    client.on("fragment:processed", on_processed)
    client.on("error", lambda data: errors.append(data))
    await client.connect(url, headers={"X-Stream-ID": "drain"}, transports=["websocket"])
    await client.call("stream:init", {"source_language": "en", "target_language": "es"}, timeout=30)
    pcm = (audio[: 6 * 16000] * 32767).astype("<i2").tobytes()
    ack = await client.call(
        "fragment:data",
        {
            "fragment_id": "d0",
            "sequence_number": 0,
            "audio": pcm,
            "sample_rate": 16000,
            "channels": 1,
            "format": "pcm_s16le",
        },
        timeout=30,
    )
    assert ack["status"] == "queued"
    proc.send_signal(signal.SIGTERM)
    # While draining: not ready, and new work is refused with a retryable SHUTTING_DOWN.
    async with aiohttp.ClientSession() as http:
        for _ in range(40):
            async with http.get(f"{url}/ready") as response:
                if response.status == 503:
                    assert (await response.json())["reason"] == "draining"
                    break
            await asyncio.sleep(0.05)
        else:
            pytest.fail("/ready never turned 503 during drain")
    refused = await client.call(
        "fragment:data",
        {"fragment_id": "d1", "sequence_number": 1, "audio": pcm, "sample_rate": 16000, "channels": 1},
        timeout=30,
    )
    assert refused["status"] == "rejected" and refused["error"]["code"] == "SHUTTING_DOWN"
    assert refused["error"]["retryable"] is True
    # A worker connecting meanwhile is sent to another replica at once, not after a close.
    late = socketio.AsyncClient(reconnection=False)
    late_refusal: list[dict] = []
    late.on("connect_error", lambda data: late_refusal.append(data))
    with pytest.raises(socketio.exceptions.ConnectionError):
        await late.connect(url, transports=["websocket"])
    assert late_refusal[0]["code"] == "SHUTTING_DOWN" and late_refusal[0]["retryable"] is True
    assert await asyncio.wait_for(proc.wait(), 90) == 0
    exited = asyncio.get_running_loop().time()
    by_id = {p["fragment_id"]: p for p in processed}
    assert by_id["d0"]["status"] in ("success", "partial")  # the in-flight fragment was delivered
    # Once the last result is out, the clients are disconnected and the process exits (issue 11,
    # item 7: it used to sit until engine.io's ping timeout, 30 s past the drain).
    assert exited - delivered[-1] < EXIT_AFTER_LAST_DELIVERY_S, exited - delivered[-1]
    await _disconnected(client)


#: Measured ~0.3 s from the last delivery to the process's exit on 2 busy cores (README, Operations).
EXIT_AFTER_LAST_DELIVERY_S = 1.5


async def _disconnected(client: socketio.AsyncClient, timeout: float = 5) -> None:
    for _ in range(int(timeout / 0.05)):
        if not client.connected:
            return
        await asyncio.sleep(0.05)
    raise AssertionError("the server never closed the client's connection")


async def test_sigterm_with_idle_clients_on_both_transports_exits_at_once(served):
    """Nothing in flight: before, one idle websocket client held the exit for 30.2 s (polling 10.2 s)."""
    proc, url, _ = served
    clients = {transport: socketio.AsyncClient(reconnection=False) for transport in ("websocket", "polling")}
    reasons: dict[str, str] = {}
    for transport, client in clients.items():

        def record(reason: str = "", transport: str = transport) -> None:
            reasons[transport] = reason

        client.on("disconnect", record)
        await client.connect(url, headers={"X-Stream-ID": f"idle-{transport}"}, transports=[transport])
        await client.call("stream:init", {"source_language": "en", "target_language": "es"}, timeout=30)
    loop = asyncio.get_running_loop()
    started = loop.time()
    proc.send_signal(signal.SIGTERM)
    assert await asyncio.wait_for(proc.wait(), 30) == 0
    assert loop.time() - started < EXIT_AFTER_LAST_DELIVERY_S, loop.time() - started
    for client in clients.values():
        await _disconnected(client)
    # A lost transport, not engine.io's final CLOSE: a reconnecting worker comes back through the
    # Service to another replica instead of staying disconnected.
    assert reasons == dict.fromkeys(clients, socketio.AsyncClient.reason.TRANSPORT_ERROR), reasons


def test_invalid_configuration_fails_fast_naming_the_variable(tmp_path):
    import subprocess

    result = subprocess.run(
        [*LIVEDUB, "serve"],
        env={**os.environ, "BACKPRESSURE_THRESHOLD_LOW": "9", "BACKPRESSURE_THRESHOLD_MEDIUM": "2"},
        capture_output=True,
        text=True,
        timeout=60,
        cwd=tmp_path,
    )
    assert result.returncode == 2
    assert "BACKPRESSURE_THRESHOLD_LOW" in result.stderr


def test_cli_help_lists_commands():
    import subprocess

    result = subprocess.run([*LIVEDUB, "--help"], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0 and "serve" in result.stdout and "dub" in result.stdout
    assert Path(sys.executable).parent.joinpath("livedub").exists()


async def test_first_fragment_after_ready_is_as_fast_as_later_ones(served, shared_data):
    """Every engine ran once on a built-in sample before /ready (issue 11, item 10: the first
    fragment took 1.35x the steady-state time)."""
    _, url, tmp_path = served
    lines = [json.loads(line) for line in (tmp_path / "serve.log").read_text().splitlines() if line.startswith("{")]
    [ready] = [entry for entry in lines if entry.get("msg") == "engines ready"]
    assert ready.get("error") is None and ready["target"] == "es"
    assert all(ready[stage] > 0 for stage in ("asr_ms", "translation_ms", "tts_ms", "duration_match_ms")), ready
    async with aiohttp.ClientSession() as http, http.get(f"{url}/metrics") as response:
        metrics = await response.text()
    [warmup] = [line for line in metrics.splitlines() if line.startswith("sts_warmup_seconds ")]
    assert float(warmup.split()[1]) > 0

    client = socketio.AsyncClient(reconnection=False)
    await client.connect(url, headers={"X-Stream-ID": "cold"}, transports=["websocket"])
    await client.call("stream:init", {"source_language": "en", "target_language": "es"}, timeout=30)
    pcm = (fleurs("fleurs-en-001")[0][: 4 * 16000] * 32767).astype("<i2").tobytes()
    times = []
    for seq in range(4):  # the same audio each time: only warmth differs
        done: asyncio.Future[dict] = asyncio.get_running_loop().create_future()
        client.on("fragment:processed", lambda data, d=done: d.done() or d.set_result(data))
        await client.emit("fragment:data", {"fragment_id": f"c{seq}", "sequence_number": seq, "audio": pcm})
        result = await asyncio.wait_for(done, 120)
        assert result["status"] in ("success", "partial")
        times.append(result["processing_time_ms"])
    await client.disconnect()
    # Generous: two cores are shared with other work, so only a cold start's margin is asserted.
    assert times[0] <= 1.3 * float(np.median(times[1:])), times
