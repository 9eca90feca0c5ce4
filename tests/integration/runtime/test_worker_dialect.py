"""The media-service worker's own dialect against the real server, live-paced, on real speech.

The client below speaks exactly what that worker speaks (protocol/dialects/worker.py lists it):
websocket only, no headers and no auth payload, nested ``config`` / ``audio`` objects, 48 kHz stereo
raw ADTS segments of 282 AAC frames labelled ``m4a``, at most 3 in flight, and an 8 s deadline after
which it drops a result. It checks what that worker checks: the fields it reads, dubbed bytes that
demux as MP4 with an AAC track at the stream's rate and channels and the segment's length, order, and
arrival before the deadline.
"""

from __future__ import annotations

import asyncio
import base64
import dataclasses
import logging
import time
import uuid
from typing import Any

import numpy as np
import pytest
import socketio

from livedub.runtime.engines.base import Speech, Synthesizer
from support.adts import AAC_FRAME, decode_track, worker_segments
from support.data import fleurs

pytestmark = pytest.mark.slow

WORKER_EVENTS = ("stream:ready", "fragment:ack", "fragment:processed", "backpressure", "error", "stream:complete")
SEGMENT_S = 282 * AAC_FRAME / 48000  # 6.016 s
DEADLINE_S = 8.0


@pytest.fixture(scope="module")
def programme() -> list[bytes]:
    """~20 s of English speech from three FLEURS speakers, cut like the worker cuts a live stream."""
    clips = [fleurs(name) for name in ("fleurs-en-000", "fleurs-en-002", "fleurs-en-007")]
    rate = clips[0][1]
    return worker_segments(np.concatenate([audio for audio, _ in clips]), rate)


class Worker:
    """The worker's side of the wire: sends like it, records arrival times like it."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.client = socketio.AsyncClient(reconnection=False)
        self.events: list[tuple[str, Any, float]] = []
        self.sent_at: dict[str, float] = {}
        self.changed = asyncio.Condition()
        self.stream_id = f"live-{uuid.uuid4().hex[:8]}"
        for name in WORKER_EVENTS:
            self.client.on(name, self._recorder(name))

    def _recorder(self, name: str) -> Any:
        async def record(data: Any) -> None:
            async with self.changed:
                self.events.append((name, data, time.monotonic()))
                self.changed.notify_all()

        return record

    def of(self, name: str) -> list[Any]:
        return [data for event, data, _ in self.events if event == name]

    async def wait_for(self, name: str, count: int, timeout: float) -> list[Any]:
        async with self.changed:
            try:
                await asyncio.wait_for(self.changed.wait_for(lambda: len(self.of(name)) >= count), timeout)
            except TimeoutError:
                pytest.fail(f"waited {timeout}s for {count} {name}: {self.events[-3:]}")
        return self.of(name)

    async def start(self, *, timeout_ms: int = 8000, query: str = "", **config: Any) -> dict[str, Any]:
        await self.client.connect(self.url + query, transports=["websocket"])
        await self.client.emit(
            "stream:init",
            {
                "stream_id": self.stream_id,
                "worker_id": "media-worker-1",
                "config": {
                    "source_language": "en",
                    "target_language": "es",
                    "voice_profile": "default",
                    "format": "m4a",
                    "sample_rate_hz": 48000,
                    "channels": 2,
                    "chunk_duration_ms": 6000,
                    **config,
                },
                "max_inflight": 3,
                "timeout_ms": timeout_ms,
            },
        )
        ready = await self.wait_for("stream:ready", 1, timeout=10)  # the worker gives up after 10 s
        return dict(ready[0])

    async def send(self, sequence: int, segment: bytes) -> str:
        fragment_id = str(uuid.uuid4())
        frames = len(segment)  # only for the log line: the worker reports duration from frame count
        self.sent_at[fragment_id] = time.monotonic()
        await self.client.emit(
            "fragment:data",
            {
                "fragment_id": fragment_id,
                "stream_id": self.stream_id,
                "sequence_number": sequence,
                "timestamp": int(time.time() * 1000),
                "audio": {
                    "format": "m4a",
                    "sample_rate_hz": 48000,
                    "channels": 2,
                    "duration_ms": round(SEGMENT_S * 1000, 1),
                    "data_base64": base64.b64encode(segment).decode(),
                },
                "metadata": {"pts_ns": sequence * int(SEGMENT_S * 1e9), "bytes": frames},
            },
        )
        return fragment_id

    async def run_live(self, segments: list[bytes]) -> list[str]:
        """Send segments at real-time pace, never more than 3 awaiting an answer."""
        ids: list[str] = []
        start = time.monotonic()
        for sequence, segment in enumerate(segments):
            await asyncio.sleep(max(0.0, start + sequence * SEGMENT_S - time.monotonic()))
            await self.wait_for("fragment:processed", len(ids) - 2, timeout=60)  # at most 3 unanswered
            ids.append(await self.send(sequence, segment))
        return ids

    def latency(self, fragment_id: str) -> float:
        arrived = next(
            t for event, data, t in self.events if event == "fragment:processed" and data["fragment_id"] == fragment_id
        )
        return arrived - self.sent_at[fragment_id]

    async def close(self) -> None:
        if self.client.connected:
            await self.client.disconnect()


def assert_worker_result(result: dict[str, Any], stream_id: str, sequence: int, segment: bytes) -> None:
    for key in ("fragment_id", "stream_id", "sequence_number", "status", "processing_time_ms"):
        assert key in result, (key, result)
    assert result["stream_id"] == stream_id and result["sequence_number"] == sequence
    assert result["status"] in ("success", "partial"), result.get("error")
    audio = result["dubbed_audio"]
    assert set(audio) >= {"format", "sample_rate_hz", "channels", "duration_ms", "data_base64"}
    assert (audio["format"], audio["sample_rate_hz"], audio["channels"]) == ("m4a", 48000, 2)
    track = decode_track(base64.b64decode(audio["data_base64"]))
    assert "mp4" in track.container and track.codec == "aac", track
    assert (track.sample_rate, track.channels) == (48000, 2)
    expected = decode_track(segment).samples
    assert track.samples == expected, f"dub is {track.samples} samples, the segment {expected}"


async def test_a_live_worker_stream_is_answered_within_its_deadline(make_server, programme):
    """Every segment of a live-paced stream is answered before the worker's 8 s deadline, in order:
    a dub of the segment's exact length or, where this machine is too slow for that fragment, the
    designed ``TIMEOUT`` ("play the original"). Whether 2 cores dub every 48 kHz stereo segment in
    time is a speed figure (bench/, README), not this test's: on an idle CI machine all five were
    dubbed (2026-12-01, a155854); on the same machine later the same code had 2 of 5 answered TIMEOUT."""
    server = await make_server()
    worker = Worker(server.url)
    try:
        ready = await worker.start()
        assert ready["session_id"] and 1 <= ready["max_inflight"] <= 3
        assert ready["engines"]["tts"] == "kokoro"  # "default": the engine's own voice for Spanish
        ids = await worker.run_live(programme)
        results = await worker.wait_for("fragment:processed", len(ids), timeout=60)
        assert [r["sequence_number"] for r in results] == list(range(len(ids)))
        dubbed = 0
        for sequence, (result, segment) in enumerate(zip(results, programme, strict=True)):
            if result["status"] == "failed":
                error = result["error"]
                assert error["code"] == "TIMEOUT" and error["retryable"] is True and error["stage"], error
                assert result["stream_id"] == worker.stream_id and result["sequence_number"] == sequence
                continue
            assert_worker_result(result, worker.stream_id, sequence, segment)
            dubbed += 1
        assert dubbed >= 1, [r["error"] for r in results]
        latencies = [worker.latency(fragment_id) for fragment_id in ids]
        assert max(latencies) < DEADLINE_S, latencies
        assert any(r.get("translated_text") for r in results)
        acks = worker.of("fragment:ack")
        assert all({"fragment_id", "status", "queue_position"} <= set(a) for a in acks)

        await worker.client.emit("stream:end", {"stream_id": worker.stream_id, "reason": "programme over"})
        (complete,) = await worker.wait_for("stream:complete", 1, timeout=30)
        assert complete["total_fragments"] == len(ids)
        assert complete["success_count"] == dubbed and complete["failed_count"] == len(ids) - dubbed
        assert 0 < complete["avg_processing_time_ms"] < DEADLINE_S * 1000
        logging.getLogger(__name__).info(
            "worker latencies %s, %d of %d dubbed", [round(x, 2) for x in latencies], dubbed, len(ids)
        )
    finally:
        await worker.close()


async def test_both_dialects_on_one_server_at_once(make_server, programme):
    server = await make_server()
    worker = Worker(server.url)
    guide = await server.connect(stream_id="guide-stream")
    try:
        await worker.start(timeout_ms=60000)  # this test is about dialects, not deadlines
        kind, ready = await guide.init()
        assert kind == "stream:ready" and "stream_id" in ready
        speech, _ = fleurs("fleurs-en-003")
        await asyncio.gather(worker.send(0, programme[0]), guide.send("g-0", 0, speech, stream_id="guide-stream"))
        (flat,) = await guide.processed(1, timeout=60)
        (nested,) = await worker.wait_for("fragment:processed", 1, timeout=60)
        # Each stream is answered in its own dialect.
        assert isinstance(flat["dubbed_audio"], str) and flat["format"] == "pcm_s16le"
        assert isinstance(nested["dubbed_audio"], dict) and nested["dubbed_audio"]["format"] == "m4a"
        assert_worker_result(nested, worker.stream_id, 0, programme[0])
        assert all("data_base64" not in str(data) for _, data in guide.events)
    finally:
        await worker.close()


class SlowOnce(Synthesizer):
    """The real TTS, with its first call held up past any deadline (a stalled GPU, a cold cache)."""

    def __init__(self, inner: Synthesizer, delay_s: float) -> None:
        self.inner, self.name, self.delay_s, self.calls = inner, inner.name, delay_s, 0

    @property
    def languages(self) -> frozenset[str]:
        return self.inner.languages

    def synthesize(self, text: str, *, language: str, voice: Any = None, speed: float = 1.0) -> Speech:
        self.calls += 1
        if self.calls == 1:
            time.sleep(self.delay_s)  # stalled, then gives up with nothing useful (its answer is late anyway)
            return Speech(np.zeros(24000 // 2, dtype=np.float32), 24000)
        return self.inner.synthesize(text, language=language, voice=voice, speed=speed)


async def test_a_fragment_that_cannot_finish_is_answered_timeout_before_the_deadline(make_server, engines, programme):
    # The stall outlasts segment 0's deadline (its TTS starts 1-2 s in, the answer is due at 7.5 s) and,
    # like a real stalled engine, keeps the TTS slot until it returns (~8.5 s): segment 1 (due at
    # 13.5 s) must still make it after that.
    slow = dataclasses.replace(engines, tts=SlowOnce(engines.tts, delay_s=7.0))
    server = await make_server(engines_override=slow)
    worker = Worker(server.url)
    try:
        await worker.start(timeout_ms=8000)
        ids = await worker.run_live(programme)
        results = await worker.wait_for("fragment:processed", len(ids), timeout=60)
        first, *later = results
        assert first["status"] == "failed", first
        assert first["error"]["code"] == "TIMEOUT" and first["error"]["retryable"] is True
        assert first["error"]["stage"] == "tts"
        assert worker.latency(ids[0]) < DEADLINE_S, "the TIMEOUT itself must arrive before the deadline"
        # Later segments were not held past their own deadlines behind the slow one: each answered in
        # time, dubbed — or, where this 2-core machine is too slow for that segment by itself (seen in
        # CI here), its own TIMEOUT; the segment right after the stall must be dubbed (it was queued
        # behind the stalled TTS slot, which is what this test is about).
        missed = 1
        for sequence, (result, fragment_id) in enumerate(zip(later, ids[1:], strict=True), start=1):
            assert worker.latency(fragment_id) < DEADLINE_S, (sequence, worker.latency(fragment_id))
            if result["status"] == "failed" and sequence > 1:
                assert result["error"]["code"] == "TIMEOUT", result["error"]
                missed += 1
                continue
            assert_worker_result(result, worker.stream_id, sequence, programme[sequence])
        metrics = (await _get(server.url + "/metrics")).splitlines()
        assert f"sts_deadline_misses_total {missed:.1f}" in metrics
    finally:
        await worker.close()


async def test_a_rejected_worker_fragment_still_names_its_stream_and_number(make_server):
    server = await make_server()
    worker = Worker(server.url)
    try:
        await worker.start()
        await worker.client.emit(
            "fragment:data",
            {"fragment_id": "bad-1", "stream_id": worker.stream_id, "sequence_number": 4, "audio": {"format": "m4a"}},
        )
        (result,) = await worker.wait_for("fragment:processed", 1, timeout=10)
        assert result["status"] == "failed" and result["error"]["code"] == "INVALID_PAYLOAD"
        assert (result["stream_id"], result["sequence_number"]) == (worker.stream_id, 4)
        assert "processing_time_ms" in result
        (error,) = await worker.wait_for("error", 1, timeout=10)
        assert {"code", "message", "retryable"} <= set(error) and "data_base64" in error["message"]
    finally:
        await worker.close()


async def test_worker_backpressure_uses_its_vocabulary(make_server, programme):
    # Thresholds low enough that three in flight means "pause" and draining means "none".
    server = await make_server(
        backpressure_threshold_low=1, backpressure_threshold_medium=2, backpressure_threshold_high=3
    )
    worker = Worker(server.url)
    try:
        await worker.start()
        for sequence, segment in enumerate(programme[:3]):
            await worker.send(sequence, segment)
        await worker.wait_for("fragment:processed", 3, timeout=90)
        await asyncio.sleep(0.2)
        events = worker.of("backpressure")
        assert {e["action"] for e in events} <= {"none", "slow_down", "pause"}
        assert {e["severity"] for e in events} <= {"low", "medium", "high"}
        assert any(e["action"] == "pause" for e in events) and events[-1]["action"] == "none"
        assert all(e["stream_id"] == worker.stream_id for e in events)
        slowed = [e for e in events if e["action"] == "slow_down"]
        assert all(e["recommended_delay_ms"] > 0 for e in slowed)
    finally:
        await worker.close()


async def _get(url: str) -> str:
    import aiohttp

    async with aiohttp.ClientSession() as session, session.get(url) as response:
        return await response.text()
