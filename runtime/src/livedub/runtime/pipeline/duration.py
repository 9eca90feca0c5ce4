"""Duration matching policy: how much to stretch, where to place speech, and how to grade it.

Pure functions, no audio engine: the pipeline measures, asks these what to do, and runs the
stretcher. The rules:

* The speech is time-stretched by ``rate = natural / target`` clamped to
  ``[SPEED_RATIO_MIN, SPEED_RATIO_MAX]``: beyond those, stretched speech stops being intelligible,
  and a partial fragment is better than gibberish.
* Speech shorter than the fragment (even after the slowest allowed stretch) is padded with silence,
  starting where the original speaker started talking (from ASR word timestamps), so lips and
  pauses line up better than always starting at zero. The result is then exactly on time.
* Speech longer than the fragment even at the fastest rate is kept whole (never cut mid-word), and
  the overrun is graded with the guide's thresholds: ``success`` up to
  ``DURATION_VARIANCE_SUCCESS_MAX``, ``partial`` up to ``DURATION_VARIANCE_PARTIAL_MAX``, otherwise
  ``failed`` with ``DURATION_MISMATCH_EXCEEDED``.

``speed_ratio`` on the wire is the tempo applied to the synthesised speech (1.0 untouched, 1.2 =
20 % faster), so a worker can see how hard the fit was.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np

from livedub.runtime.engines.base import Samples

Status = Literal["success", "partial", "failed"]

#: Below this difference a stretch is not worth its artefacts; pad/trim does the rest.
_NEGLIGIBLE_RATE = 0.01
#: Trailing overrun we trim instead of stretching: a few ms are the TTS's own silence tail.
_TRIM_TOLERANCE_S = 0.02


@dataclass(frozen=True, slots=True)
class DurationPolicy:
    speed_ratio_min: float
    speed_ratio_max: float
    success_max: float
    partial_max: float

    def stretch_rate(self, natural_s: float, target_s: float) -> float:
        """Tempo to apply to speech of ``natural_s`` seconds so it fills ``target_s``, clamped."""
        if natural_s <= 0 or target_s <= 0:
            return 1.0
        rate = natural_s / target_s
        if abs(rate - 1.0) < _NEGLIGIBLE_RATE:
            return 1.0
        return float(min(max(rate, self.speed_ratio_min), self.speed_ratio_max))

    def grade(self, variance: float) -> Status:
        if variance <= self.success_max:
            return "success"
        if variance <= self.partial_max:
            return "partial"
        return "failed"


def variance(actual_s: float, target_s: float) -> float:
    return abs(actual_s - target_s) / target_s if target_s > 0 else 0.0


def trim_silence(audio: Samples, sample_rate: int, threshold_db: float = -45.0, pad_s: float = 0.03) -> Samples:
    """Cut leading/trailing near-silence from synthesised speech, keeping a short natural margin."""
    if audio.size == 0:
        return audio
    frame = max(1, int(0.01 * sample_rate))
    usable = len(audio) // frame * frame
    if usable == 0:
        return audio
    rms = np.sqrt(np.mean(audio[:usable].reshape(-1, frame) ** 2, axis=1) + 1e-12)
    voiced = np.flatnonzero(20 * np.log10(rms) > threshold_db)
    if voiced.size == 0:
        return audio[:0]
    pad = int(pad_s * sample_rate)
    start = max(0, voiced[0] * frame - pad)
    end = min(len(audio), (voiced[-1] + 1) * frame + pad)
    return audio[start:end]


def fit(speech: Samples, sample_rate: int, target_samples: int, speech_start_s: float = 0.0) -> Samples:
    """Place (already stretched) ``speech`` in a buffer of ``target_samples``.

    Short speech is padded with silence, starting at ``speech_start_s`` when it still fits; speech
    a hair too long (the TTS's tail) is trimmed; longer speech is returned whole.
    """
    overrun = len(speech) - target_samples
    if overrun > int(_TRIM_TOLERANCE_S * sample_rate):
        return speech
    if overrun >= 0:
        return speech[:target_samples]
    free = target_samples - len(speech)
    offset = min(max(0, int(speech_start_s * sample_rate)), free)
    out = np.zeros(target_samples, dtype=np.float32)
    out[offset : offset + len(speech)] = speech
    return out
