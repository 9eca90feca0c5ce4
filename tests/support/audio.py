"""Audio measurements shared by the engine tests."""

from __future__ import annotations

import numpy as np


def median_pitch_hz(audio: np.ndarray, rate: int, *, voicing: float) -> float:
    """Median autocorrelation pitch (60-400 Hz) over loud 40 ms frames.

    A frame counts as voiced when its autocorrelation peak reaches ``voicing`` times its energy.
    """
    frame = int(0.04 * rate)
    loud = np.percentile(np.abs(audio), 90) * 0.3
    low, high = rate // 400, rate // 60
    pitches = []
    for start in range(0, len(audio) - frame, frame):
        chunk = audio[start : start + frame] - audio[start : start + frame].mean()
        if np.abs(chunk).max() < loud:
            continue
        corr = np.correlate(chunk, chunk, "full")[frame - 1 :]
        lag = low + int(np.argmax(corr[low:high]))
        if corr[lag] > voicing * corr[0]:
            pitches.append(rate / lag)
    return float(np.median(pitches))
