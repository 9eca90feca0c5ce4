"""Integrated loudness (ITU-R BS.1770-4 / EBU R128) and matching one signal's loudness to another's.

Measurement is pyloudnorm's (K-weighting, 400 ms blocks, absolute gate at -70 LUFS, relative gate
10 LU below): a maintained implementation of the standard rather than our own filters. Around it
this module makes a per-fragment gain safe to apply live:

* too short to measure (pyloudnorm needs one 400 ms block) or digitally silent: no gain at all,
  never NaN or infinity; audio under the absolute gate (-70 LUFS) but not silent is measured
  (``below_gate``), so a near-silent programme gets a near-silent dub, not the engine's own level;
* a boost is limited to ``max_gain_db``, so a near-silent fragment is not blown up (a cut is not:
  a loud dub over a quiet programme must come all the way down; FLEURS speech is at -45 LUFS);
* and lowered where it would push the peak over ``ceiling_db``: the peak is estimated on a 4x
  oversampled copy (soxr), which sees inter-sample peaks the way a true-peak meter (BS.1770 annex 2)
  does, and no limiter touches the signal, so matching never distorts it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import pyloudnorm
import soxr

from livedub.runtime.engines.base import Samples

#: BS.1770's gating block: shorter audio has no integrated loudness.
BLOCK_S = 0.4
#: Channels pyloudnorm weighs (L, R, C, Ls, Rs); see :func:`_measurable` for more.
_MAX_CHANNELS = 5
#: FFmpeg's 5.1, 6.1 and 7.1 layouts put the LFE fourth; BS.1770 leaves it out of the sum.
_LFE_INDEX = 3
_OVERSAMPLE = 4
#: How far near-silent audio is raised to be measured (below_gate): down to -130 LUFS, well under
#: 16-bit dither, so only digital silence stays unmeasurable.
_QUIET_BOOST_DB = 60.0


@dataclass(frozen=True, slots=True)
class LoudnessMatch:
    """What :func:`match` did: the loudness before and after (None: not measurable) and the gain."""

    reference_lufs: float | None
    measured_lufs: float | None
    gain_db: float

    @property
    def result_lufs(self) -> float | None:
        return None if self.measured_lufs is None else self.measured_lufs + self.gain_db


@lru_cache(maxsize=16)
def _meter(rate: int) -> pyloudnorm.Meter:
    # Building the K-weighting filters costs more than measuring a fragment; one meter per rate.
    return pyloudnorm.Meter(rate, block_size=BLOCK_S)


def _measurable(frames: Samples) -> Samples:
    """Frames in a shape pyloudnorm accepts: mono (n,) or (n, <= 5) channels in L R C Ls Rs order.

    Above five channels (5.1, 6.1, 7.1 in FFmpeg's order) the LFE is dropped, as BS.1770 says, and
    the first five of the rest are weighed; side channels past those are left out. Input and output
    are measured the same way, so the gain that matches them is unaffected by the approximation.
    """
    if frames.ndim == 1 or frames.shape[1] <= _MAX_CHANNELS:
        return frames
    keep = [c for c in range(frames.shape[1]) if c != _LFE_INDEX][:_MAX_CHANNELS]
    return frames[:, keep]


def integrated_lufs(frames: Samples, rate: int, *, below_gate: bool = False) -> float | None:
    """Integrated loudness in LUFS, or None when there is none (shorter than a block, or silent).

    ``below_gate``: audio under the absolute gate (-70 LUFS) is measured too, instead of None.
    Whisper still hears speech there, and a level to match the dub to is exactly what a near-silent
    programme needs. Loudness scales with the signal and the relative gate is relative, so the
    audio is measured ``_QUIET_BOOST_DB`` up and that is taken off again.
    """
    if len(frames) < math.ceil(BLOCK_S * rate):
        return None
    data = np.asarray(_measurable(frames), dtype=np.float64)
    value = float(_meter(rate).integrated_loudness(data))
    if not math.isfinite(value) and below_gate:
        boosted = float(_meter(rate).integrated_loudness(data * 10 ** (_QUIET_BOOST_DB / 20)))
        value = boosted - _QUIET_BOOST_DB
    return value if math.isfinite(value) else None


def peak(frames: Samples, rate: int) -> float:
    """Peak magnitude of a 4x oversampled copy: close to the true (inter-sample) peak."""
    if frames.size == 0:
        return 0.0
    upsampled = soxr.resample(np.asarray(frames, dtype=np.float32), rate, rate * _OVERSAMPLE, quality="LQ")
    return float(max(np.max(np.abs(upsampled)), np.max(np.abs(frames))))


def match(
    frames: Samples,
    rate: int,
    reference_lufs: float | None,
    *,
    max_gain_db: float,
    ceiling_db: float,
) -> tuple[Samples, LoudnessMatch]:
    """``frames`` scaled to ``reference_lufs``, boosted by at most ``max_gain_db``, under ``ceiling_db`` peak."""
    measured = integrated_lufs(frames, rate, below_gate=True)
    if reference_lufs is None or measured is None:
        return frames, LoudnessMatch(reference_lufs, measured, 0.0)
    gain_db = min(reference_lufs - measured, max_gain_db)
    top = peak(frames, rate)
    if top > 0.0:
        gain_db = min(gain_db, ceiling_db - 20.0 * math.log10(top))
    if gain_db == 0.0:
        return frames, LoudnessMatch(reference_lufs, measured, 0.0)
    scaled = (frames * np.float32(10.0 ** (gain_db / 20.0))).astype(np.float32, copy=False)
    return scaled, LoudnessMatch(reference_lufs, measured, gain_db)
