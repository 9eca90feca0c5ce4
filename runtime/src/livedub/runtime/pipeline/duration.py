"""Duration matching policy: how much to stretch, where to place speech, and how to grade it.

Pure functions, no audio engine: the pipeline measures, asks these what to do, and runs the
stretcher. The rules:

* The tempo comes from the slot rules in ``pipeline/tempo.py``: a line that fits the source's speech
  span plays at its natural tempo (a small gap is closed by a gentle slow-down), a longer one is
  sped up towards the span and then the fragment, never past ``SPEED_RATIO_MAX``: beyond it,
  stretched speech stops being intelligible, and a partial fragment is better than gibberish.
  Nothing is slowed down to fill a pause (``SPEED_RATIO_MIN`` still bounds any slow-down).
* Speech shorter than the fragment is padded with silence, starting where the original speaker
  started talking (from ASR's speech timestamps), so lips and pauses line up better than always
  starting at zero. The result is then exactly on time (the fragment's sample count).
* Speech longer than the fragment even at the fastest rate is kept whole (never cut mid-word), and
  the overrun is graded with the guide's thresholds: ``success`` up to
  ``DURATION_VARIANCE_SUCCESS_MAX``, ``partial`` up to ``DURATION_VARIANCE_PARTIAL_MAX``, otherwise
  ``failed`` with ``DURATION_MISMATCH_EXCEEDED``.

``speed_ratio`` on the wire is the tempo applied to the synthesised speech (1.0 untouched, 1.2 =
20 % faster: the TTS's native speed times the stretch), so a worker can see how hard the fit was.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np

from livedub.runtime.engines.base import Samples
from livedub.runtime.pipeline.tempo import Slot, tempo_for

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

    def tempo(self, natural_s: float, slot: Slot) -> float:
        """Tempo for a line of ``natural_s`` seconds (at tempo 1.0) in ``slot``, within the clamp."""
        rate = tempo_for(natural_s, slot, self.speed_ratio_max)
        return float(min(max(rate, self.speed_ratio_min), self.speed_ratio_max))

    def stretch_for(self, natural_s: float, spoken_speed: float, slot: Slot) -> tuple[float, float]:
        """(stretch, total tempo) for speech the TTS said at ``spoken_speed``: stretch = total / speed.

        ``natural_s`` is the speech's length at tempo 1.0. A stretch within 1 % of none is skipped
        (not worth its artefacts); the total then is the TTS speed alone.
        """
        total = self.tempo(natural_s, slot)
        stretch = total / spoken_speed if spoken_speed > 0 else 1.0
        if abs(stretch - 1.0) < _NEGLIGIBLE_RATE:
            return 1.0, spoken_speed
        return stretch, total

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
