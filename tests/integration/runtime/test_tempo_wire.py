"""A dub fits the source's speech span: a short line plays at natural tempo, placed, with silence.

Real embedded engines (Whisper base, Apertium, Kokoro, the stretcher) through the real server. The
second 6 s fragment of fleurs-en-000 holds ~2 s of speech ("lag behind by 25 to 30 years") in a
4.6 s fragment: stretching the dub to fill the fragment (what a whole-fragment target did) would
play it at the 0.75 clamp; fitted to the span it plays near 1.0 and the pause stays silent.
"""

from __future__ import annotations

import base64

import numpy as np

from livedub.runtime.engines.base import ASR_SAMPLE_RATE
from livedub.runtime.pipeline.duration import trim_silence
from support.data import fleurs


def _pcm(data: dict) -> np.ndarray:
    audio = data["dubbed_audio"]
    raw = audio if isinstance(audio, bytes) else base64.b64decode(audio)
    return np.frombuffer(raw, dtype="<i2").astype(np.float32) / 32768.0


def _voiced_span(audio: np.ndarray) -> tuple[float, float]:
    """Start and end (seconds) of the audible part, by 10 ms frames above -45 dBFS."""
    frames = audio[: len(audio) // 160 * 160].reshape(-1, 160)
    loud = np.flatnonzero(20 * np.log10(np.sqrt((frames**2).mean(axis=1)) + 1e-12) > -45)
    return loud[0] * 0.01, (loud[-1] + 1) * 0.01


async def test_a_short_line_is_not_slowed_to_fill_its_fragment(make_server, shared_data):
    audio, rate = fleurs("fleurs-en-000")
    chunk = audio[6 * rate :]  # the clip's second fragment, as the client cuts it
    source_start, source_end = _voiced_span(chunk)
    server = await make_server()
    client = await server.connect()
    await client.init(voice_profile=None)
    await client.send("tail", 0, chunk)
    [result] = await client.processed(1, timeout=180)
    assert result["status"] == "success", result.get("error")
    dubbed = _pcm(result)
    assert len(dubbed) == len(chunk)  # exactly the fragment's sample count
    tempo = result["metadata"]["speed_ratio"]
    assert 0.9 <= tempo <= 1.2, tempo  # natural, not the 0.75 a whole-fragment fit would need
    start, end = _voiced_span(dubbed)
    # Placed where the source speaker started, and the rest of the fragment left silent.
    assert abs(start - source_start) < 0.35, (start, source_start)
    assert end < len(chunk) / ASR_SAMPLE_RATE - 0.8, (end, source_end)
    assert len(trim_silence(dubbed, ASR_SAMPLE_RATE)) / ASR_SAMPLE_RATE < 0.8 * len(chunk) / ASR_SAMPLE_RATE
