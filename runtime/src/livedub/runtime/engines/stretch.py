"""Time-stretch backends: change tempo, keep pitch, return exactly ``round(len / rate)`` samples.

Measured by ``bench/stretch_compare.py`` on this 2-core machine (first 6 s of FLEURS en-000 at
16 kHz, median of 3 calls; WER = Whisper base on 4 FLEURS clips en/es/fr/de, 16.5 % unstretched;
``bench/results/stretch_compare.json``):

==============  ====================  ==================  =====================  ==================
backend         ms at x0.8/1.25/1.6   onset error (ms)    round-trip LSD (dB)    WER x0.8/1.25/1.6
==============  ====================  ==================  =====================  ==================
rubberband-r3   139 / 92 / 74         2.5 / 0.1 / 10.9    **5.4 / 6.2 / 7.4**    20 / 13 / 18 %
rubberband-r2   47 / 28 / 28          12.8 / 1.8 / 6.6    6.9 / 7.3 / 8.1        21 / 21 / 27 %
signalsmith     **18 / 12 / 9**       6.9 / 7.4 / 9.6     8.1 / 8.5 / 8.4        18 / 13 / 19 %
==============  ====================  ==================  =====================  ==================

All three already return the exact sample count (length error 0); :func:`fit_length` still
trims/pads so the contract holds whatever a backend version does.

Default (``STRETCH_ENGINE=auto``): **Rubber Band R3 (``--fine``)** when ``rubberband-cli`` is
installed, else Signalsmith. R3 damages the signal least (round-trip spectral distance 1-3 dB below
the others) and keeps onsets in place; Whisper hears R3 and Signalsmith output equally well (the WER
differences are a word or two on ~170 words), R2 worse. R3's ~0.1 s per 6 s fragment is small next
to TTS (Kokoro RTF 0.4-0.8, seconds per fragment), so fidelity wins. ``signalsmith`` is the choice
where CPU is the bottleneck (7x cheaper, in-process, a wheel only, no temporary files).
librosa's phase vocoder is not offered: it damages speech (NOTES.md: ASR WER 20-30 % after it).
"""

from __future__ import annotations

import shutil
import subprocess
from abc import abstractmethod

import numpy as np

from livedub.runtime.engines.base import Samples, TimeStretcher
from livedub.runtime.errors import EngineError, ErrorCode, ModelLoadError

#: Beyond these the runtime's own limits (SPEED_RATIO_MIN/MAX) apply; this only rejects nonsense.
MIN_RATE, MAX_RATE = 0.1, 10.0


def target_length(samples: int, rate: float) -> int:
    return max(0, round(samples / rate))


def fit_length(audio: Samples, length: int) -> Samples:
    """Trim or zero-pad the end to exactly ``length`` samples."""
    if len(audio) >= length:
        return np.ascontiguousarray(audio[:length], dtype=np.float32)
    return np.concatenate([audio.astype(np.float32, copy=False), np.zeros(length - len(audio), np.float32)])


def _check(audio: Samples, rate: float) -> Samples:
    if not (MIN_RATE <= rate <= MAX_RATE) or not np.isfinite(rate):
        raise EngineError(ErrorCode.INTERNAL, f"stretch rate {rate} outside {MIN_RATE}-{MAX_RATE}", retryable=False)
    samples = np.asarray(audio, dtype=np.float32)
    if samples.ndim != 1:
        raise EngineError(
            ErrorCode.INVALID_AUDIO, f"stretch takes mono audio, got shape {samples.shape}", retryable=False
        )
    return samples


class _LengthFittedStretcher(TimeStretcher):
    """Runs the backend, then settles the last few samples so the output length is exact."""

    def stretch(self, audio: Samples, sample_rate: int, rate: float) -> Samples:
        samples = _check(audio, rate)
        length = target_length(len(samples), rate)
        if rate == 1.0 or len(samples) == 0:
            return fit_length(samples.copy(), length)
        return fit_length(self.raw_stretch(samples, sample_rate, rate), length)

    @abstractmethod
    def raw_stretch(self, samples: Samples, sample_rate: int, rate: float) -> Samples:
        """The backend's own output, length not fitted (for the benchmark)."""


class RubberBandStretcher(_LengthFittedStretcher):
    """Rubber Band through ``pyrubberband`` and Debian's ``rubberband-cli``: R3 (``--fine``) or R2."""

    def __init__(self, fine: bool = True, timeout_s: float = 10.0) -> None:
        if shutil.which("rubberband") is None:
            raise ModelLoadError("STRETCH_ENGINE=rubberband needs rubberband-cli (apt-get install rubberband-cli)")
        try:
            import pyrubberband  # noqa: F401 - fail at start-up, not on the first fragment
        except ImportError as exc:
            raise ModelLoadError(f"STRETCH_ENGINE=rubberband needs pyrubberband: {exc}") from exc
        self.fine = fine
        self.timeout_s = timeout_s
        self.name = "rubberband-r3" if fine else "rubberband-r2"

    def raw_stretch(self, samples: Samples, sample_rate: int, rate: float) -> Samples:
        """The backend's own output, length not fitted (for the benchmark)."""
        import pyrubberband

        # A fresh dict per call: pyrubberband writes '--tempo' into the one it is given. R2 is the
        # CLI's default engine; ``--fine`` selects R3. ``--duration`` would be exact too, but the
        # tempo form keeps both engines on one code path and fit_length settles the last samples.
        args = {"--fine": ""} if self.fine else {}
        try:
            out = pyrubberband.time_stretch(samples, sample_rate, rate, rbargs=args)
        except (RuntimeError, subprocess.CalledProcessError, OSError) as exc:
            raise EngineError(ErrorCode.INTERNAL, f"rubberband failed: {exc}", retryable=False) from exc
        return np.asarray(out, dtype=np.float32).reshape(-1)


class SignalsmithStretcher(_LengthFittedStretcher):
    """Signalsmith Stretch (``python-stretch``, MIT): in-process, fast, exact length."""

    name = "signalsmith"

    def __init__(self, cheaper: bool = False) -> None:
        try:
            from python_stretch.Signalsmith import Stretch
        except ImportError as exc:
            raise ModelLoadError(f"STRETCH_ENGINE=signalsmith needs python-stretch: {exc}") from exc
        self._stretch_class = Stretch
        self.cheaper = cheaper
        if cheaper:
            self.name = "signalsmith-cheaper"

    def raw_stretch(self, samples: Samples, sample_rate: int, rate: float) -> Samples:
        """The backend's own output, length not fitted (for the benchmark)."""
        # A processor per call: it keeps internal state, and calls come from several threads.
        processor = self._stretch_class()
        processor.preset(1, float(sample_rate), self.cheaper)
        processor.setTimeFactor(float(rate))
        out = np.asarray(processor.process(np.ascontiguousarray(samples[None, :], dtype=np.float32)))
        return np.asarray(out[0], dtype=np.float32)


def build_stretcher(engine: str = "auto") -> TimeStretcher:
    """``auto`` = Rubber Band R3 if ``rubberband-cli`` is installed, else Signalsmith (see above)."""
    if engine == "rubberband":
        return RubberBandStretcher(fine=True)
    if engine == "rubberband-r2":
        return RubberBandStretcher(fine=False)
    if engine == "signalsmith":
        return SignalsmithStretcher()
    if engine != "auto":
        raise ModelLoadError(f"unknown STRETCH_ENGINE '{engine}'")
    try:
        return RubberBandStretcher(fine=True)
    except ModelLoadError:
        return SignalsmithStretcher()
