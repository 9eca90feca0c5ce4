"""What every separation backend does around its model: rate, channel groups, exact length.

A fragment arrives at any rate with any number of channels; a model takes one rate and a fixed
channel count (Spleeter and Demucs: stereo at 44.1 kHz). So the fragment is resampled to the model's
rate (soxr), cut into groups of the model's channels (a mono fragment, or an odd last channel, is
repeated to fill the group and only its own channels are kept), and the background comes back at the
fragment's rate and exact length (two soxr conversions may be a sample off).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from livedub.runtime.audio.codec import resample
from livedub.runtime.engines.base import Samples
from livedub.runtime.engines.separation_base import SeparationError

#: Below this peak a fragment is silence: its background is silence, and no model is called.
SILENCE = 1e-6


def _two_d(samples: Samples) -> Samples:
    return samples if samples.ndim == 2 else samples[:, None]


def separate_in_groups(
    frames: Samples, sample_rate: int, model_rate: int, model_channels: int, separate: Callable[[Samples], Samples]
) -> Samples:
    """Background of ``frames`` (samples x channels) through ``separate`` (samples x model_channels)."""
    n, channels = frames.shape
    if float(np.max(np.abs(frames), initial=0.0)) < SILENCE:
        return np.zeros((n, channels), dtype=np.float32)
    at_model_rate = _two_d(resample(np.ascontiguousarray(frames, dtype=np.float32), sample_rate, model_rate))
    out = np.empty_like(at_model_rate)
    for first in range(0, channels, model_channels):
        group = at_model_rate[:, first : first + model_channels]
        filled = np.resize(group.T, (model_channels, len(group))).T if group.shape[1] < model_channels else group
        separated = separate(np.ascontiguousarray(filled))
        if separated.shape != filled.shape:
            raise SeparationError(f"the model returned {separated.shape}, expected {filled.shape}")
        out[:, first : first + model_channels] = separated[:, : group.shape[1]]
    back = _two_d(resample(out, model_rate, sample_rate))
    fixed = np.zeros((n, channels), dtype=np.float32)
    fixed[: min(n, len(back))] = back[:n]
    return fixed
