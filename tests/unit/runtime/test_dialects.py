"""Both wire dialects, shape by shape: detection, the worker's nested payloads, and what goes back."""

from __future__ import annotations

import base64

import pytest
from pydantic import ValidationError

from livedub.runtime.errors import DubbingError, ErrorCode, Stage
from livedub.runtime.protocol import events as ev
from livedub.runtime.protocol.dialects import GUIDE, WORKER, detect

WORKER_INIT = {
    "stream_id": "live-1",
    "worker_id": "w-1",
    "config": {
        "source_language": "en",
        "target_language": "es",
        "voice_profile": "default",
        "format": "m4a",
        "sample_rate_hz": 48000,
        "channels": 2,
        "chunk_duration_ms": 6000,
        "domain_hints": ["Champions League", "VAR"],
    },
    "max_inflight": 3,
    "timeout_ms": 8000,
}
ADTS = bytes([0xFF, 0xF1, 0x4C, 0x80, 0x26, 0xFF, 0xFC]) + b"\x00" * 32
MP4 = b"\x00\x00\x00\x1cftypM4A " + b"\x00" * 32


def worker_fragment(data: bytes, **audio: object) -> dict[str, object]:
    return {
        "fragment_id": "f-1",
        "stream_id": "live-1",
        "sequence_number": 0,
        "timestamp": 1764000000000,
        "audio": {
            "format": "m4a",
            "sample_rate_hz": 48000,
            "channels": 2,
            "duration_ms": 6016,
            "data_base64": base64.b64encode(data).decode(),
            **audio,
        },
        "metadata": {"pts_ns": 0},
    }


def test_detection_by_shape_and_by_name():
    assert detect(WORKER_INIT) is WORKER
    assert detect({"source_language": "en", "target_language": "es"}) is GUIDE
    assert detect(worker_fragment(ADTS)) is WORKER
    assert detect({"fragment_id": "a", "audio": "AAAA"}) is GUIDE
    assert detect({"dialect": "worker", "source_language": "en"}) is WORKER
    assert detect(None) is GUIDE and detect([1, 2]) is GUIDE


def test_worker_init_becomes_a_stream_answered_in_m4a_at_its_own_rate():
    init = WORKER.stream_init(WORKER_INIT)
    assert (init.stream_id, init.source_language, init.target_language) == ("live-1", "en", "es")
    assert init.voice_profile is None  # "default": the engine's own voice
    assert (init.format, init.sample_rate_hz, init.channels) == (ev.AudioFormat.M4A, 48000, 2)
    assert (init.output_format, init.output_sample_rate_hz) == (ev.AudioFormat.M4A, 48000)
    assert init.timeout_ms == 8000 and init.max_inflight == 3
    assert init.domain_hints == ("Champions League", "VAR")
    named = WORKER.stream_init({**WORKER_INIT, "config": {**WORKER_INIT["config"], "voice_profile": "anna"}})
    assert named.voice_profile == "anna"


def test_worker_init_errors_name_the_nested_field():
    bad = {**WORKER_INIT, "config": {"target_language": "es"}}
    with pytest.raises(ValidationError) as info:
        WORKER.stream_init(bad)
    assert "config.source_language: Field required" in ev.invalid_payload("stream:init", info.value).message
    with pytest.raises(ValidationError):
        WORKER.stream_init({"config": WORKER_INIT["config"]})  # the worker always names its stream


def test_raw_adts_labelled_m4a_is_decoded_as_adts_and_a_real_mp4_as_mp4():
    assert WORKER.fragment(worker_fragment(ADTS)).format is ev.AudioFormat.AAC
    assert WORKER.fragment(worker_fragment(MP4)).format is ev.AudioFormat.M4A
    fragment = WORKER.fragment(worker_fragment(ADTS))
    assert (fragment.sample_rate, fragment.channels, fragment.duration_ms) == (48000, 2, 6016)
    assert fragment.audio == base64.b64encode(ADTS).decode()


def test_worker_result_has_object_shaped_audio_and_always_its_ids():
    result = ev.FragmentProcessed(
        fragment_id="f-1",
        status="success",
        dubbed_audio=MP4,  # binary in the service; the worker only reads base64
        stream_id="live-1",
        sequence_number=3,
        processing_time_ms=2100,
        metadata=ev.DurationMetadata(
            original_duration_ms=6016, dubbed_duration_ms=6016, duration_variance_percent=0, speed_ratio=1.1
        ),
        format="m4a",
        sample_rate=48000,
        channels=2,
    )
    event, payload = WORKER.encode(result)
    assert event == "fragment:processed"
    assert payload["dubbed_audio"] == {
        "format": "m4a",
        "sample_rate_hz": 48000,
        "channels": 2,
        "duration_ms": 6016,
        "data_base64": base64.b64encode(MP4).decode(),
    }
    assert "format" not in payload and "sample_rate" not in payload
    error = ev.ErrorInfo.from_error(DubbingError(ErrorCode.INVALID_PAYLOAD, "bad", stage=Stage.PROTOCOL))
    _, rejected = WORKER.encode(ev.FragmentProcessed(fragment_id="x", status="failed", error=error))
    assert rejected["stream_id"] is None and rejected["sequence_number"] is None
    assert rejected["processing_time_ms"] == 0 and rejected["dubbed_audio"] is None
    # The guide's dialect keeps its flat shape.
    assert GUIDE.encode(result)[1]["dubbed_audio"] == MP4


@pytest.mark.parametrize(
    ("severity", "action", "worker_action", "worker_severity"),
    [
        ("none", "resume", "none", "low"),
        ("low", "monitor", "none", "low"),
        ("medium", "slow_down", "slow_down", "medium"),
        ("high", "pause", "pause", "high"),
        ("critical", "reject", "pause", "high"),
    ],
)
def test_backpressure_in_the_workers_vocabulary(severity, action, worker_action, worker_severity):
    event = ev.Backpressure(
        stream_id="live-1",
        severity=ev.BackpressureSeverity(severity),
        action=ev.BackpressureAction(action),
        current_inflight=3,
        max_inflight=3,
    )
    name, payload = WORKER.encode(event)
    assert name == "backpressure"
    assert (payload["stream_id"], payload["action"], payload["severity"]) == ("live-1", worker_action, worker_severity)
    assert ("recommended_delay_ms" in payload) == (worker_action == "slow_down")


def test_stream_complete_carries_the_workers_statistics():
    done = ev.StreamComplete(
        stream_id="live-1",
        session_id="s",
        fragments_received=10,
        fragments_delivered=10,
        success=7,
        partial=1,
        failed=2,
        avg_processing_time_ms=2345.6,
    )
    name, payload = WORKER.encode(done)
    assert name == "stream:complete"
    assert (payload["total_fragments"], payload["success_count"], payload["failed_count"]) == (10, 8, 2)
    assert payload["avg_processing_time_ms"] == 2345.6


def test_a_worker_stream_gets_the_workers_deadline_even_when_its_init_omits_it():
    bare = {key: value for key, value in WORKER_INIT.items() if key != "timeout_ms"}
    assert WORKER.stream_init(bare).timeout_ms == 8000
    assert WORKER.stream_init({**WORKER_INIT, "timeout_ms": 5000}).timeout_ms == 5000


def test_worker_payloads_always_carry_the_fields_it_reads():
    error = ev.ErrorInfo.from_error(DubbingError(ErrorCode.BACKPRESSURE_EXCEEDED, "busy", stage=Stage.SESSION))
    _, ack = WORKER.encode(ev.FragmentAck(fragment_id="f", status="rejected", error=error))
    assert ack["queue_position"] == 0 and ack["stream_id"] is None
    _, failed = WORKER.encode(ev.FragmentProcessed(fragment_id="f", status="failed", error=error, stream_id="s"))
    assert "dubbed_audio" in failed and failed["dubbed_audio"] is None


GLOSSARY = [{"source": "Champions League", "target": "Liga de Campeones"}, {"source": "VAR", "target": "VAR"}]


@pytest.mark.parametrize("dialect", ["guide", "worker"])
def test_glossary_is_accepted_in_both_dialects(dialect: str) -> None:
    if dialect == "guide":
        init = GUIDE.stream_init({"source_language": "en", "target_language": "es", "glossary": GLOSSARY})
    else:
        init = WORKER.stream_init({**WORKER_INIT, "config": {**WORKER_INIT["config"], "glossary": GLOSSARY}})
    assert [(e.source, e.target) for e in init.glossary] == [("Champions League", "Liga de Campeones"), ("VAR", "VAR")]


@pytest.mark.parametrize(
    ("glossary", "problem"),
    [
        ([{"source": "VAR", "target": "VAR"}] * 65, "at most 64"),
        ([{"source": "x" * 65, "target": "y"}], "at most 64 characters"),
        ([{"source": "", "target": "y"}], "at least 1 character"),
        ([{"source": "!!", "target": "y"}], "letter or digit"),
        ([{"source": "VAR"}], "Field required"),
        ([{"source": "VAR", "target": "VAR"}, {"source": "var", "target": "videoarbitraje"}], "two translations"),
        ("Champions League", "valid"),
    ],
)
@pytest.mark.parametrize("dialect", ["guide", "worker"])
def test_a_bad_glossary_is_a_typed_refusal_in_both_dialects(dialect: str, glossary: object, problem: str) -> None:
    with pytest.raises(ValidationError) as info:
        if dialect == "guide":
            GUIDE.stream_init({"source_language": "en", "target_language": "es", "glossary": glossary})
        else:
            WORKER.stream_init({**WORKER_INIT, "config": {**WORKER_INIT["config"], "glossary": glossary}})
    error = ev.invalid_payload("stream:init", info.value)
    assert error.code == ErrorCode.INVALID_PAYLOAD and error.stage == Stage.PROTOCOL and not error.retryable
    assert "glossary" in error.message and problem in error.message
