"""Mixes over the real Socket.IO server on loopback, with the embedded engines and FLEURS speech.

The fragment is a programme: 1.5 s of a music bed (synthesised: the shared data has no music), then
English FLEURS speech over it. The dub (Whisper -> MT -> Kokoro, real) starts where the speech does,
so the first second is a pause of the dub: there the original must come back at full level, and under
the dub's speech it must be ducked by the stream's amount. The output's integrated loudness (BS.1770)
must be the input's, within 1 LU.
"""

from __future__ import annotations

import base64
import dataclasses
import io
import os
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from livedub.runtime.audio import loudness
from livedub.runtime.audio.codec import decode
from livedub.runtime.protocol.events import AudioFormat
from support.beds import music_bed
from support.data import fleurs

pytestmark = pytest.mark.slow
SR = 16000


def programme(rate: int = SR) -> np.ndarray:
    speech = fleurs("fleurs-en-000")[0][: int(4.5 * SR)]
    voice = np.concatenate([np.zeros(int(1.5 * SR), np.float32), speech])
    if rate != SR:
        from livedub.runtime.audio.codec import resample

        voice = resample(voice, SR, rate)
    return (voice + music_bed(len(voice), rate, level=0.02)).astype(np.float32)


def _gain_on_original(out: np.ndarray, original: np.ndarray, start_s: float, end_s: float, rate: int) -> float:
    """Least-squares gain of the original inside a window (the dub is another voice: uncorrelated)."""
    a, b = int(start_s * rate), int(end_s * rate)
    o = original[a:b].astype(np.float64)
    return float(np.dot(out[a:b], o) / np.dot(o, o))


def _pcm(data: str | bytes, channels: int) -> np.ndarray:
    raw = data if isinstance(data, bytes) else base64.b64decode(data)
    return (np.frombuffer(raw, "<i2").astype(np.float32) / 32768).reshape(-1, channels)


def _check_voiceover(out: np.ndarray, original: np.ndarray, rate: int, duck_db: float) -> None:
    assert out.shape == original.shape  # the exact fragment length, every channel
    before, after = loudness.integrated_lufs(original, rate), loudness.integrated_lufs(out, rate)
    assert before is not None and after is not None
    assert abs(after - before) <= 1.0, (before, after)
    channels = [(out[:, c], original[:, c]) for c in range(original.shape[1])]
    for o, x in channels:
        # The dub starts where ASR heard speech start (~1.5 s; Whisper's VAD may put it a little
        # earlier over the music): the loudest quarter second of the lead-in is the dub's pause.
        pause = max(_gain_on_original(o, x, s, s + 0.25, rate) for s in np.arange(0.0, 1.5, 0.25))
        under = np.median([_gain_on_original(o, x, s, s + 0.5, rate) for s in np.arange(2.5, 5.5, 0.5)])
        profile = [round(_gain_on_original(o, x, s, s + 0.25, rate), 2) for s in np.arange(0.0, 5.75, 0.25)]
        assert 0.5 < pause < 2.0, (
            pause,
            before,
            after,
            profile,
        )  # audible at about its own level (plus the loudness trim)
        ducked_db = 20 * np.log10(pause / max(under, 1e-6))
        assert duck_db - 4 <= ducked_db <= duck_db + 4, ducked_db


async def test_voiceover_returns_the_dub_over_the_ducked_original_at_the_input_loudness(make_server):
    server = await make_server()
    client = await server.connect()
    kind, ready = await client.init(mix="voiceover", mix_duck_db=15)
    assert kind == "stream:ready" and ready["mix"] == "voiceover"
    original = programme()
    await client.send("f0", 0, original)
    (result,) = await client.processed(1, timeout=180)
    assert result["status"] in ("success", "partial"), result
    assert result["transcript"] and result["stage_timings"]["mix_ms"] >= 0
    _check_voiceover(_pcm(result["dubbed_audio"], 1), original[:, None], SR, duck_db=15)


async def test_voiceover_keeps_each_channel_of_a_stereo_48k_wav_stream(make_server):
    server = await make_server()
    client = await server.connect()
    kind, _ = await client.init(mix="voiceover", sample_rate_hz=48000, channels=2, format="wav")
    assert kind == "stream:ready"
    mono = programme(48000)
    # Left and right differ: the bed is panned, so a mono mix-down would fail the per-channel check.
    right_bed = music_bed(len(mono), 48000, bpm=120, level=0.02)
    original = np.stack([mono, mono * 0.6 + right_bed], axis=1).astype(np.float32)
    buffer = io.BytesIO()
    sf.write(buffer, original, 48000, format="WAV", subtype="PCM_16")
    await client.client.emit(
        "fragment:data",
        {
            "fragment_id": "st0",
            "stream_id": "stream-1",
            "sequence_number": 0,
            "audio": base64.b64encode(buffer.getvalue()).decode(),
            "format": "wav",
            "sample_rate": 48000,
            "channels": 2,
        },
    )
    (result,) = await client.processed(1, timeout=180)
    assert result["status"] in ("success", "partial") and result["channels"] == 2, result
    out = decode(
        base64.b64decode(result["dubbed_audio"]), AudioFormat.WAV, sample_rate=48000, channels=2, keep_channels=True
    ).frames
    assert out is not None
    quantised = original.copy()  # what the server decoded: 16-bit
    _check_voiceover(out, quantised, 48000, duck_db=12)


async def test_worker_dialect_voiceover_over_m4a_stereo(make_server):
    server = await make_server()
    client = await server.connect(stream_id=None)
    mono = programme(48000)
    original = np.stack([mono, mono * 0.8], axis=1).astype(np.float32)
    buffer = io.BytesIO()
    sf.write(buffer, original, 48000, format="WAV", subtype="PCM_16")
    await client.client.emit(
        "stream:init",
        {
            "stream_id": "live-mix",
            "worker_id": "media-worker-1",
            # The worker's own 8 s deadline is about latency, measured in bench/; this is about the mix
            # on a 2-core machine shared with other jobs.
            "timeout_ms": 120000,
            "config": {
                "source_language": "en",
                "target_language": "es",
                "sample_rate_hz": 48000,
                "channels": 2,
                "format": "wav",
                "mix": "voiceover",
            },
        },
    )
    await client.wait_for(lambda r: bool(r.of("stream:ready") or r.of("error")), 30)
    assert client.of("stream:ready")[0]["mix"] == "voiceover", client.events
    await client.client.emit(
        "fragment:data",
        {
            "fragment_id": "w0",
            "stream_id": "live-mix",
            "sequence_number": 0,
            "audio": {
                "format": "wav",
                "sample_rate_hz": 48000,
                "channels": 2,
                "data_base64": base64.b64encode(buffer.getvalue()).decode(),
            },
        },
    )
    (result,) = await client.processed(1, timeout=180)
    audio = result["dubbed_audio"]
    assert result["status"] in ("success", "partial"), result
    assert audio["format"] == "m4a" and audio["channels"] == 2
    out = decode(
        base64.b64decode(audio["data_base64"]), AudioFormat.M4A, sample_rate=48000, channels=2, keep_channels=True
    ).frames
    assert out is not None and abs(len(out) - len(original)) <= 1024  # AAC frames: within one frame
    lag = _lag(out[:, 0], original[:, 0], 48000)
    aligned = out[lag:] if lag >= 0 else np.pad(out, ((-lag, 0), (0, 0)))
    n = min(len(aligned), len(original))
    _check_voiceover(aligned[:n], original[:n], 48000, duck_db=12)


def _lag(out: np.ndarray, original: np.ndarray, rate: int, most: int = 2048) -> int:
    """Samples the encoded output is late by (AAC's encoder delay), from the dub's silent first second."""
    window = original[most : rate - most]
    scores = [np.dot(out[most + lag : rate - most + lag], window) for lag in range(-most, most + 1)]
    return int(np.argmax(scores)) - most


async def test_the_default_mix_is_the_plain_dub_with_no_mix_stage(make_server):
    server = await make_server()
    client = await server.connect()
    kind, ready = await client.init()
    assert kind == "stream:ready" and ready["mix"] == "dub"
    await client.send("d0", 0, programme())
    (result,) = await client.processed(1, timeout=180)
    assert result["status"] in ("success", "partial") and "mix_ms" not in result["stage_timings"]
    dub = _pcm(result["dubbed_audio"], 1)[:, 0]
    assert np.max(np.abs(dub[: int(1.0 * SR)])) < 1e-3  # silence before the dub: no original under it


async def test_background_without_separation_is_refused_at_init_in_both_dialects(make_server):
    server = await make_server()
    guide = await server.connect()
    kind, error = await guide.init(mix="background")
    assert kind == "error"
    assert (error["code"], error["stage"], error["retryable"]) == ("UNSUPPORTED_MIX", "session", False)
    assert "SEPARATION_ENGINE" in error["message"]
    kind, _ = await guide.init(mix="voiceover")  # the connection is fine: another mix is served
    assert kind == "stream:ready"
    worker = await server.connect(stream_id=None, worker_id="worker-2")
    await worker.client.emit(
        "stream:init",
        {"stream_id": "w-bg", "config": {"source_language": "en", "target_language": "es", "mix": "background"}},
    )
    await worker.wait_for(lambda r: bool(r.of("error") or r.of("stream:ready")), 30)
    (refusal,) = worker.of("error")
    assert refusal["code"] == "UNSUPPORTED_MIX" and refusal["retryable"] is False


@pytest.mark.parametrize(
    "fields",
    [{"mix": "karaoke"}, {"mix": "voiceover", "mix_duck_db": 60}, {"mix": "voiceover", "mix_fade_ms": 1}],
)
async def test_bad_mix_fields_are_typed_refusals(make_server, fields):
    server = await make_server()
    client = await server.connect()
    kind, error = await client.init(**fields)
    assert kind == "error" and error["code"] == "INVALID_PAYLOAD" and error["retryable"] is False, error


SEPARATION_PYTHON = Path(os.environ.get("SEPARATION_PYTHON", ".venv-separation/bin/python"))
needs_separation = pytest.mark.skipif(
    os.environ.get("LIVEDUB_SEPARATION_TESTS") != "1" or not SEPARATION_PYTHON.exists(),
    reason="real Spleeter runs in the separation venv: LIVEDUB_SEPARATION_TESTS=1 (make test-separation)",
)


@needs_separation
async def test_background_lays_the_dub_over_the_separated_music_with_the_real_spleeter(make_server, engines):
    from livedub.runtime.config import Settings
    from livedub.runtime.engines.factory import build_separator

    separator = build_separator(
        Settings(_env_file=None, separation_engine="spleeter", separation_python=SEPARATION_PYTHON)
    )
    assert separator is not None
    try:
        with_separation = dataclasses.replace(engines, extras={**engines.extras, "separation": separator})
        server = await make_server(engines_override=with_separation)
        client = await server.connect()
        kind, ready = await client.init(mix="background")
        assert kind == "stream:ready" and ready["mix"] == "background"
        speech = fleurs("fleurs-en-000")[0][: int(4.5 * SR)]
        voice = np.concatenate([np.zeros(int(1.5 * SR), np.float32), speech])
        bed = music_bed(len(voice), SR, level=0.02)
        original = voice + bed
        await client.send("b0", 0, original)
        (result,) = await client.processed(1, timeout=300)
        assert result["status"] in ("success", "partial"), result
        out = _pcm(result["dubbed_audio"], 1)[:, 0]
        assert len(out) == len(original)
        before, after = loudness.integrated_lufs(original, SR), loudness.integrated_lufs(out, SR)
        assert abs(after - before) <= 1.0, (before, after)
        # Under the dub the bed is the separated music, not the English speech: the output follows
        # the music far more than it follows the original voice.
        window = slice(int(2.0 * SR), int(5.5 * SR))
        music = float(np.corrcoef(out[window], bed[window])[0, 1])
        english = float(np.corrcoef(out[window], voice[window])[0, 1])
        assert music > 0.3 and english < music / 2, (music, english)
    finally:
        separator.close()


def _levelled(name: str, lufs: float) -> np.ndarray:
    clip = fleurs(name)[0]
    level = loudness.integrated_lufs(clip, SR)
    assert level is not None
    return (clip * 10 ** ((lufs - level) / 20)).astype(np.float32)


async def test_voiceover_ducking_does_not_jump_at_fragment_boundaries(make_server):
    """A continuous programme cut into 6 s fragments. Each fragment's ducking follows its own dub,
    and where one dub speaks up to its fragment's end and the next starts in a pause (or the reverse),
    the original jumped by the whole duck depth in one sample: measured before the fix at this very
    programme, 1.19 -> 0.27 and 1.08 -> 0.24 (about -13 dB), a click. The next fragment now starts
    from the gain the previous one ended at; what is left is the per-fragment loudness trim."""
    server = await make_server(asr_timeout_ms=60_000, translation_timeout_ms=60_000, tts_timeout_ms=60_000)
    client = await server.connect()
    kind, _ = await client.init(mix="voiceover")
    assert kind == "stream:ready"
    # Three English readers at a broadcast-like level, a music bed 8 LU under them.
    speech = np.concatenate([_levelled(n, -30.0) for n in ("fleurs-en-000", "fleurs-en-005", "fleurs-en-008")])
    speech = speech[: 24 * SR]
    bed = music_bed(len(speech), SR, level=0.02)
    bed_lufs = loudness.integrated_lufs(bed, SR)
    assert bed_lufs is not None
    programme_audio = (speech + bed * 10 ** ((-38 - bed_lufs) / 20)).astype(np.float32)
    fragments = [programme_audio[i * 6 * SR : (i + 1) * 6 * SR] for i in range(4)]
    for index, fragment in enumerate(fragments):
        await client.send(f"c{index}", index, fragment)
    results = await client.processed(len(fragments), timeout=400)
    assert all(r["status"] in ("success", "partial") for r in results), results
    out = np.concatenate([_pcm(r["dubbed_audio"], 1)[:, 0] for r in results])
    window = int(0.05 * SR)
    steps = []
    for k in range(1, len(fragments)):
        b = k * 6 * SR
        before = _gain_on_original(out, programme_audio, (b - window) / SR, b / SR, SR)
        after = _gain_on_original(out, programme_audio, b / SR, (b + window) / SR, SR)
        steps.append(round(20 * np.log10(max(after, 1e-3) / max(before, 1e-3)), 1))
    assert all(abs(step) <= 3.0 for step in steps), steps


async def test_a_near_silent_programme_gets_a_near_silent_dub(make_server):
    """Speech 6 dB under BS.1770's absolute gate (-70 LUFS) still reaches Whisper, which dubs it. The
    gated loudness of such a fragment is -inf: the mix took that as "no reference" and sent the dub at
    the TTS engine's own level, ~50 dB over the programme, where a fragment 2 dB louder was matched."""
    server = await make_server(asr_timeout_ms=60_000, translation_timeout_ms=60_000, tts_timeout_ms=60_000)
    client = await server.connect()
    kind, _ = await client.init(mix="voiceover")
    assert kind == "stream:ready"
    speech = fleurs("fleurs-en-000")[0][: 6 * SR]
    level = loudness.integrated_lufs(speech, SR)
    assert level is not None
    quiet = (speech * 10 ** ((-76 - level) / 20)).astype(np.float32)
    assert loudness.integrated_lufs(quiet, SR) is None  # under the gate
    await client.send("q0", 0, quiet)
    (result,) = await client.processed(1, timeout=180)
    assert result["status"] in ("success", "partial") and result["transcript"], result
    out = _pcm(result["dubbed_audio"], 1)[:, 0]
    boost = 10 ** (40 / 20)  # measure both 40 dB up, where the gate does not cut them off
    before, after = loudness.integrated_lufs(quiet * boost, SR), loudness.integrated_lufs(out * boost, SR)
    assert before is not None and after is not None
    assert abs(after - before) <= 2.0, (before - 40, after - 40)


async def test_in_the_dubs_pauses_the_original_keeps_its_own_level(make_server):
    """The bed is the original at its own level wherever the dub pauses, so music does not jump
    between fragments with and without speech; only the dub is scaled to bring the mix to the
    input's loudness. Before, the last loudness correction scaled the whole mix, bed included
    (+1.5 dB in one pause over the real server: a level step at the next boundary)."""
    server = await make_server(asr_timeout_ms=60_000, translation_timeout_ms=60_000, tts_timeout_ms=60_000)
    client = await server.connect()
    kind, _ = await client.init(mix="voiceover")
    assert kind == "stream:ready"
    original = programme()
    await client.send("lvl0", 0, original)
    (result,) = await client.processed(1, timeout=180)
    assert result["status"] in ("success", "partial"), result
    out = _pcm(result["dubbed_audio"], 1)[:, 0]
    # The lead-in's first second: music only, well before the dub's fade down (speech at ~1.5 s).
    gains = [_gain_on_original(out, original, s, s + 0.25, SR) for s in np.arange(0.0, 1.0, 0.25)]
    assert all(abs(20 * np.log10(g)) <= 0.3 for g in gains), gains
    before, after = loudness.integrated_lufs(original, SR), loudness.integrated_lufs(out, SR)
    assert before is not None and after is not None and abs(after - before) <= 1.0, (before, after)


async def test_a_pause_answered_before_the_speech_before_it_still_meets_it_without_a_step(make_server):
    """A pause after speech is answered at once (no speech: no ASR text, no TTS), so it is mixed
    before the fragment in front of it; that fragment, mixed second, must end where the pause began."""
    server = await make_server(asr_timeout_ms=60_000, translation_timeout_ms=60_000, tts_timeout_ms=60_000)
    client = await server.connect()
    kind, _ = await client.init(mix="voiceover")
    assert kind == "stream:ready"
    speech = _levelled("fleurs-en-000", -30.0)[: 6 * SR]  # the reading runs past the fragment's end
    bed = music_bed(12 * SR, SR, level=0.02)
    bed_lufs = loudness.integrated_lufs(bed, SR)
    assert bed_lufs is not None
    programme_audio = np.concatenate([speech, np.zeros(6 * SR, np.float32)]) + bed * 10 ** ((-38 - bed_lufs) / 20)
    programme_audio = programme_audio.astype(np.float32)
    await client.send("s0", 0, programme_audio[: 6 * SR])
    await client.send("s1", 1, programme_audio[6 * SR :])
    results = await client.processed(2, timeout=240)
    assert results[0]["transcript"] and not results[1]["transcript"], results
    out = np.concatenate([_pcm(r["dubbed_audio"], 1)[:, 0] for r in results])
    b, window = 6 * SR, int(0.05 * SR)
    before = _gain_on_original(out, programme_audio, (b - window) / SR, b / SR, SR)
    after = _gain_on_original(out, programme_audio, b / SR, (b + window) / SR, SR)
    step = 20 * np.log10(max(after, 1e-3) / max(before, 1e-3))
    assert abs(step) <= 3.0, (before, after)
