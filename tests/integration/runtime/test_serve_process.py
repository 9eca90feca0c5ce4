"""``livedub serve`` and ``livedub dub`` as real processes: start-up, readiness, the dub client, drain."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import sys
from pathlib import Path

import aiohttp
import numpy as np
import pytest
import socketio
import soundfile as sf

from support.data import FLEURS, fleurs

pytestmark = pytest.mark.slow
LIVEDUB = [sys.executable, "-m", "livedub.runtime.cli"]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def _wait_ready(url: str, timeout: float = 120) -> None:
    async with aiohttp.ClientSession() as http:
        deadline = asyncio.get_running_loop().time() + timeout
        while asyncio.get_running_loop().time() < deadline:
            try:
                async with http.get(f"{url}/ready") as response:
                    if response.status == 200:
                        return
            except aiohttp.ClientError:
                pass
            await asyncio.sleep(0.25)
    raise TimeoutError("runtime never became ready")


@pytest.fixture
async def served(tmp_path):
    port = _free_port()
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
        await _wait_ready(url)
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
    client.on("fragment:processed", lambda data: processed.append(data))
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
    assert await asyncio.wait_for(proc.wait(), 90) == 0
    by_id = {p["fragment_id"]: p for p in processed}
    assert by_id["d0"]["status"] in ("success", "partial")  # the in-flight fragment was delivered
    await client.disconnect()


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
