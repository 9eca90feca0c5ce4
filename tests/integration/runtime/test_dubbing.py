"""End to end over the wire with the embedded engines and real FLEURS speech."""

from __future__ import annotations

import base64

import jiwer
import numpy as np
import pytest

from livedub.runtime.engines.base import ASR_SAMPLE_RATE
from support.data import fleurs, fleurs_text

pytestmark = pytest.mark.slow


def _normalise(text: str) -> str:
    return jiwer.RemovePunctuation()(text.lower()).strip()


def _pcm(data: dict) -> np.ndarray:
    audio = data["dubbed_audio"]
    raw = audio if isinstance(audio, bytes) else base64.b64decode(audio)
    return np.frombuffer(raw, dtype="<i2").astype(np.float32) / 32768.0


async def test_dubs_english_speech_into_spanish_of_the_same_length(make_server, engines, shared_data):
    server = await make_server()
    client = await server.connect()
    kind, ready = await client.init(voice_profile=None)
    assert kind == "stream:ready"
    assert ready["capabilities"] == ["asr", "translation", "tts", "duration_matching"]
    assert ready["max_inflight"] == 3 and ready["session_id"].startswith("sess-")

    audio, rate = fleurs("fleurs-en-000")
    assert rate == 16000
    chunks = [audio[i : i + 6 * rate] for i in range(0, len(audio), 6 * rate)]
    for index, chunk in enumerate(chunks):
        await client.send(f"frag-{index:03d}", index, chunk)
    results = await client.processed(len(chunks), timeout=180)

    acks = client.of("fragment:ack")
    assert [a["status"] for a in acks] == ["queued"] * len(chunks)
    assert [r["sequence_number"] for r in results] == list(range(len(chunks)))
    for result, chunk in zip(results, chunks, strict=True):
        assert result["status"] in ("success", "partial"), result.get("error")
        dubbed = _pcm(result)
        # Same duration as the fragment, within the guide's success band and in fact exact.
        assert abs(len(dubbed) - len(chunk)) / len(chunk) <= 0.05
        meta = result["metadata"]
        assert set(meta) == {"original_duration_ms", "dubbed_duration_ms", "duration_variance_percent", "speed_ratio"}
        assert set(result["stage_timings"]) >= {"asr_ms", "translation_ms", "tts_ms"}
        assert result["processing_time_ms"] > 0

    transcript = " ".join(r["transcript"] for r in results)
    assert jiwer.wer(fleurs_text("fleurs-en-000"), _normalise(transcript)) < 0.3
    translation = " ".join(r["translated_text"] for r in results)
    assert translation.strip() and translation != transcript

    # A Spanish ASR pass over the dubbed speech recognises the words it was asked to say.
    dubbed_all = np.concatenate([_pcm(r) for r in results])
    heard = engines.asr.transcribe(dubbed_all.astype(np.float32), language="es").text
    assert jiwer.wer(_normalise(translation), _normalise(heard)) < 0.6, (translation, heard)


async def test_silence_is_answered_quickly_with_silence_of_the_same_length(make_server):
    server = await make_server()
    client = await server.connect()
    await client.init()
    silence = np.zeros(6 * ASR_SAMPLE_RATE, dtype=np.float32)
    await client.send("quiet", 0, silence)
    [result] = await client.processed(1)
    assert result["status"] == "success"
    assert result["transcript"] == ""
    dubbed = _pcm(result)
    assert len(dubbed) == len(silence) and not dubbed.any()
    assert result["stage_timings"]["tts_ms"] == 0


async def test_binary_in_binary_out_and_output_rate(make_server, shared_data):
    server = await make_server()
    client = await server.connect()
    await client.init(output_sample_rate_hz=24000)
    audio, _ = fleurs("fleurs-en-001")
    await client.send("bin", 0, audio[: 4 * 16000], binary=True)
    [result] = await client.processed(1)
    assert isinstance(result["dubbed_audio"], bytes)
    assert result["sample_rate"] == 24000
    assert len(result["dubbed_audio"]) == 4 * 24000 * 2


async def test_wav_and_m4a_fragments_come_back_in_their_own_format(make_server, shared_data):
    from livedub.runtime.audio.codec import decode, encode
    from livedub.runtime.protocol.events import AudioFormat

    server = await make_server()
    client = await server.connect()
    await client.init()
    audio, _ = fleurs("fleurs-en-002")
    clip = audio[: 5 * 16000]
    for seq, fmt in enumerate((AudioFormat.WAV, AudioFormat.M4A)):
        data = encode(clip, fmt, sample_rate=16000)
        await client.client.emit(
            "fragment:data",
            {
                "fragment_id": f"f-{fmt.value}",
                "stream_id": "stream-1",
                "sequence_number": seq,
                "audio": base64.b64encode(data).decode(),
                "format": fmt.value,
                "sample_rate": 16000,
                "channels": 1,
            },
        )
    results = await client.processed(2)
    for result, fmt in zip(results, (AudioFormat.WAV, AudioFormat.M4A), strict=True):
        assert result["status"] in ("success", "partial"), result.get("error")
        assert result["format"] == fmt.value
        back = decode(base64.b64decode(result["dubbed_audio"]), fmt, sample_rate=16000, channels=1)
        # M4A marks the AAC encoder's priming in its edit list, so both formats come back exact.
        assert back.duration_s == pytest.approx(5.0, abs=0.02)
