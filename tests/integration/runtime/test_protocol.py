"""Every event and error path of the wire protocol, against the real server on loopback."""

from __future__ import annotations

import asyncio
import base64
import json

import aiohttp
import numpy as np
import pytest

from livedub.runtime.engines.base import ASR_SAMPLE_RATE
from livedub.runtime.server.keys import SERVICE_KEY
from support.data import fleurs

SPEECH_S = 4


@pytest.fixture
def speech(shared_data) -> np.ndarray:
    audio, _ = fleurs("fleurs-en-003")
    return audio[: SPEECH_S * ASR_SAMPLE_RATE]


def silence(seconds: float = 2.0) -> np.ndarray:
    return np.zeros(int(seconds * ASR_SAMPLE_RATE), dtype=np.float32)


async def test_order_is_kept_when_later_fragments_finish_first(make_server, speech):
    server = await make_server(pipeline_concurrency=4, max_inflight=8)
    client = await server.connect()
    await client.init()
    # Speech takes seconds, silence milliseconds: 1, 3 and 5 finish long before 0, 2 and 4.
    for seq in range(6):
        await client.send(f"f{seq}", seq, speech if seq % 2 == 0 else silence())
    results = await client.processed(6, timeout=180)
    assert [r["sequence_number"] for r in results] == list(range(6))
    assert [r["fragment_id"] for r in results] == [f"f{i}" for i in range(6)]


async def test_fragment_before_stream_init_is_refused(make_server):
    server = await make_server()
    client = await server.connect()
    await client.send("early", 0, silence())
    [result] = await client.processed(1)
    assert result["status"] == "failed"
    assert result["error"]["code"] == "STREAM_NOT_INITIALIZED" and result["error"]["retryable"] is False
    assert client.of("fragment:ack")[0]["status"] == "rejected"
    await client.wait_for(lambda r: bool(r.of("error")))
    assert client.of("error")[0]["code"] == "STREAM_NOT_INITIALIZED"


async def test_unsupported_language_is_refused_at_init(make_server):
    server = await make_server()
    client = await server.connect()
    kind, error = await client.init(source_language="en", target_language="xx")
    assert kind == "error"
    assert error["code"] == "UNSUPPORTED_LANGUAGE" and error["event"] == "stream:init"


async def test_unknown_voice_profile_is_invalid_voice_profile(make_server, tmp_path):
    from livedub.runtime.engines.voices import VoiceRegistry

    (tmp_path / "voices.json").write_text(json.dumps({}))
    server = await make_server(voices=VoiceRegistry(tmp_path / "voices.json"))
    client = await server.connect()
    kind, error = await client.init(voice_profile="spanish_male_1")
    assert kind == "error" and error["code"] == "INVALID_VOICE_PROFILE" and error["retryable"] is False


@pytest.mark.parametrize(
    ("payload", "code"),
    [
        ({"audio": "%%% not base64 %%%"}, "INVALID_AUDIO"),
        ({"audio": base64.b64encode(b"\x01\x02\x03").decode()}, "INVALID_AUDIO"),
        ({"audio": "", "sequence_number": 0}, "INVALID_AUDIO"),
        ({"format": "wav", "audio": base64.b64encode(b"RIFF....garbage").decode()}, "INVALID_AUDIO"),
        ({"sequence_number": -1}, "INVALID_PAYLOAD"),
        ({"sample_rate": "fast"}, "INVALID_PAYLOAD"),
        ({"duration_ms": float("nan")}, "INVALID_PAYLOAD"),
        ({"format": "mod"}, "INVALID_PAYLOAD"),
    ],
)
async def test_bad_fragments_fail_alone_and_the_stream_goes_on(make_server, payload, code):
    server = await make_server()
    client = await server.connect()
    await client.init()
    good = (silence() * 32767).astype("<i2").tobytes()
    fragment = {
        "fragment_id": "bad",
        "stream_id": "stream-1",
        "sequence_number": 0,
        "sample_rate": 16000,
        "channels": 1,
        "format": "pcm_s16le",
        "audio": base64.b64encode(good).decode(),
        **payload,
    }
    await client.client.emit("fragment:data", fragment)
    await client.send("good", 1, silence())
    results = await client.processed(2)
    by_id = {r["fragment_id"]: r for r in results}
    assert by_id["bad"]["status"] == "failed"
    assert by_id["bad"]["error"]["code"] == code and by_id["bad"]["error"]["retryable"] is False
    assert by_id["good"]["status"] == "success"


async def test_duplicate_fragment_is_answered_once(make_server):
    server = await make_server()
    client = await server.connect()
    await client.init()
    await client.send("dup", 0, silence())
    await client.send("dup", 0, silence())
    await client.processed(1)
    await client.send("next", 1, silence())
    results = await client.processed(2)
    assert [r["fragment_id"] for r in results] == ["dup", "next"]
    assert [a["status"] for a in client.of("fragment:ack")] == ["queued", "duplicate", "queued"]


async def test_pause_resume_and_end(make_server, speech):
    server = await make_server()
    client = await server.connect()
    await client.init()
    await client.send("a", 0, speech)
    await client.client.emit("stream:pause", {})
    await client.wait_for(lambda r: bool(r.of("stream:state")))
    await client.send("while-paused", 1, silence())
    await client.client.emit("stream:resume", {})
    await client.wait_for(lambda r: len(r.of("stream:state")) == 2)
    await client.send("b", 2, silence())
    await client.client.emit("stream:end", {})
    await client.wait_for(lambda r: bool(r.of("stream:complete")), 120)
    results = client.of("fragment:processed")
    by_id = {r["fragment_id"]: r for r in results}
    assert by_id["while-paused"]["error"]["code"] == "STREAM_PAUSED" and by_id["while-paused"]["error"]["retryable"]
    # End flushed every in-flight fragment before confirming, in order.
    assert [r["sequence_number"] for r in results] == [0, 1, 2]
    assert by_id["a"]["status"] in ("success", "partial")
    assert [s["state"] for s in client.of("stream:state")] == ["paused", "active"]
    complete = client.of("stream:complete")[0]
    assert complete["fragments_delivered"] == 3 and complete["failed"] == 1
    # After the end, the stream is gone: new fragments need a new stream:init.
    await client.send("late", 3, silence())
    await client.wait_for(lambda r: len(r.of("fragment:processed")) == 4)
    assert client.of("fragment:processed")[-1]["error"]["code"] == "STREAM_NOT_INITIALIZED"


async def test_two_streams_at_once_do_not_mix(make_server, speech):
    server = await make_server()
    first = await server.connect(stream_id="alpha")
    second = await server.connect(stream_id="beta")
    await first.init()
    await second.init(target_language="es")
    for seq in range(2):
        await first.send(f"a{seq}", seq, speech if seq == 0 else silence(), stream_id="alpha")
        await second.send(f"b{seq}", seq, silence() if seq == 0 else speech, stream_id="beta")
    a = await first.processed(2, timeout=180)
    b = await second.processed(2, timeout=180)
    assert [r["fragment_id"] for r in a] == ["a0", "a1"] and {r["stream_id"] for r in a} == {"alpha"}
    assert [r["fragment_id"] for r in b] == ["b0", "b1"] and {r["stream_id"] for r in b} == {"beta"}


async def test_backpressure_events_and_rejection_past_critical(make_server, speech):
    server = await make_server(
        backpressure_threshold_low=1,
        backpressure_threshold_medium=2,
        backpressure_threshold_high=3,
        backpressure_threshold_critical=4,
        pipeline_concurrency=1,
    )
    client = await server.connect()
    await client.init()
    short = speech[: 2 * ASR_SAMPLE_RATE]
    for seq in range(5):
        await client.send(f"f{seq}", seq, short)
    results = await client.processed(5, timeout=180)
    # The rejected fragment still takes its place in the order.
    assert [r["sequence_number"] for r in results] == [0, 1, 2, 3, 4]
    assert [r["status"] != "failed" for r in results] == [True] * 4 + [False]
    assert results[4]["error"]["code"] == "BACKPRESSURE_EXCEEDED" and results[4]["error"]["retryable"] is True
    assert client.of("fragment:ack")[4]["status"] == "rejected"
    # Once everything is delivered the worker is told it may speed up again.
    await client.wait_for(lambda r: r.of("backpressure")[-1]["severity"] == "none")
    severities = [e["severity"] for e in client.of("backpressure")]
    assert severities[:4] == ["low", "medium", "high", "critical"] and severities[-1] == "none"
    medium = next(e for e in client.of("backpressure") if e["severity"] == "medium")
    assert medium["action"] == "slow_down" and medium["stream_id"] == "stream-1"
    assert set(medium) == {"stream_id", "severity", "action", "current_inflight", "max_inflight", "threshold_exceeded"}


async def test_stage_timeout_fails_the_fragment_as_retryable(make_server, speech):
    server = await make_server(asr_timeout_ms=100)
    client = await server.connect()
    await client.init()
    await client.send("slow", 0, speech)
    [result] = await client.processed(1)
    assert result["status"] == "failed"
    assert result["error"] == {
        "stage": "asr",
        "code": "TIMEOUT",
        "message": "asr processing exceeded timeout of 100ms",
        "retryable": True,
    }


async def test_duration_mismatch_exceeded(make_server, speech):
    # Forbid any speed-up and any overrun: the Spanish is longer than the English, so it fails.
    server = await make_server(
        speed_ratio_max=1.0,
        duration_variance_success_max=0.0,
        duration_variance_partial_max=0.0,
    )
    client = await server.connect()
    await client.init()
    await client.send("long", 0, speech[: 3 * ASR_SAMPLE_RATE])
    [result] = await client.processed(1)
    assert result["status"] == "failed"
    assert result["error"]["code"] == "DURATION_MISMATCH_EXCEEDED" and result["error"]["stage"] == "duration_match"
    assert result["translated_text"]


async def test_unknown_event_and_malformed_init_get_errors(make_server):
    server = await make_server()
    client = await server.connect()
    await client.client.emit("stream:rewind", {})
    kind, error = await client.init(source_language=42)
    assert kind == "error" and error["code"] == "INVALID_PAYLOAD"
    assert client.of("error")[0]["code"] == "INVALID_PAYLOAD" and "stream:rewind" in client.of("error")[0]["message"]


async def test_auth_payload_carries_stream_id_for_browsers(make_server):
    server = await make_server()
    client = await server.connect(stream_id=None, auth={"stream_id": "from-auth"})
    kind, ready = await client.init()
    assert kind == "stream:ready" and ready["stream_id"] == "from-auth"


async def test_http_health_ready_and_every_guide_metric(make_server, speech):
    server = await make_server()
    client = await server.connect()
    await client.init()
    await client.send("m", 0, speech)
    await client.processed(1)
    async with aiohttp.ClientSession() as http:
        async with http.get(f"{server.url}/health") as response:
            assert response.status == 200 and await response.json() == {"status": "healthy"}
        async with http.get(f"{server.url}/ready") as response:
            assert response.status == 200
        async with http.get(f"{server.url}/metrics") as response:
            text = await response.text()
    for name in (
        "sts_fragment_processing_seconds",
        "sts_asr_duration_seconds",
        "sts_translation_duration_seconds",
        "sts_tts_duration_seconds",
        "sts_fragments_in_flight",
        "sts_fragment_errors_total",
        "sts_gpu_utilization_percent",
        "sts_gpu_memory_used_bytes",
        "sts_queue_depth",
        "sts_backpressure_events_total",
    ):
        assert f"\n{name}" in text or text.startswith(name) or f"# TYPE {name}" in text, name
    assert 'sts_fragments_total{status="success"} 1.0' in text or 'sts_fragments_total{status="partial"} 1.0' in text
    assert "stream-1" not in text  # no stream ids or content in metrics


async def test_disconnect_mid_fragment_releases_everything(make_server, speech):
    server = await make_server()
    client = await server.connect()
    await client.init()
    await client.send("gone", 0, speech)
    await client.client.disconnect()
    service = server.app[SERVICE_KEY]
    for _ in range(200):
        if service.inflight_total == 0 and not service.connections:
            break
        await asyncio.sleep(0.05)
    assert service.inflight_total == 0 and not service.connections


async def test_voices_json_profile_with_the_embedded_tts(make_server, tmp_path, shared_data):
    import soundfile as sf

    from livedub.runtime.engines.voices import VoiceRegistry

    reference, rate = fleurs("fleurs-es-000")
    sf.write(tmp_path / "ref.wav", reference, rate)
    (tmp_path / "voices.json").write_text(
        json.dumps(
            {
                "spanish_male_1": {"language": "es", "gender": "male", "reference_audio": "ref.wav"},
                "french_female_1": {"language": "fr", "gender": "female", "reference_audio": "ref.wav"},
            }
        )
    )
    server = await make_server(voices=VoiceRegistry(tmp_path / "voices.json"))
    client = await server.connect()
    kind, ready = await client.init(voice_profile="spanish_male_1")
    assert kind == "stream:ready" and ready["voice_profile"] == "spanish_male_1"
    kind, error = await client.init(voice_profile="french_female_1", stream_id="other")
    assert kind == "error" and error["code"] == "INVALID_VOICE_PROFILE" and "'fr'" in error["message"]
    kind, error = await client.init(voice_profile="source", stream_id="third")
    assert kind == "error" and error["code"] == "INVALID_VOICE_PROFILE" and "TTS_ENGINE=xtts" in error["message"]
    await client.send("v", 0, silence())
    assert (await client.processed(1))[0]["status"] == "success"


async def test_reconnect_with_the_same_stream_id_starts_clean_without_duplicates(make_server, speech):
    server = await make_server()
    first = await server.connect(stream_id="live-1")
    await first.init()
    await first.send("a", 0, speech, stream_id="live-1")
    await first.client.disconnect()  # mid-fragment: its result has nowhere to go and is dropped
    second = await server.connect(stream_id="live-1")
    kind, _ = await second.init()
    assert kind == "stream:ready"
    await second.send("a", 0, silence(), stream_id="live-1")  # the worker resends what it lost
    await second.send("b", 1, silence(), stream_id="live-1")
    results = await second.processed(2)
    await asyncio.sleep(0.5)  # nothing from the old connection may arrive late
    assert [r["fragment_id"] for r in second.of("fragment:processed")] == ["a", "b"]
    assert all(r["status"] == "success" for r in results)
