"""Time-stretch backends: change tempo, keep pitch.

Measured on these machines (NOTES.md, 6 s of 16 kHz speech, ×0.8 / ×1.2): Rubber Band R3 ``--fine``
92 / 142 ms with the best round-trip fidelity (2.68 dB); Signalsmith (``python-stretch``) 12 / 18 ms,
2.99 dB, exact output length. A fragment is stretched once, so R3's ~0.1 s is ~2 % of the 6 s budget
and buys the cleanest speech: Rubber Band is the default whenever ``rubberband-cli`` is installed,
Signalsmith otherwise (and by ``STRETCH_ENGINE=signalsmith`` where every millisecond counts).
librosa's phase vocoder is not offered: it damages speech (ASR WER 20-30 % after stretching).
``bench/stretch_compare.py`` repeats the comparison on this machine.
"""

from __future__ import annotations

import shutil

import numpy as np

from livedub.runtime.engines.base import Samples, TimeStretcher


class RubberBandStretcher(TimeStretcher):
    """Rubber Band R3 (``--fine``) through ``pyrubberband`` and Debian's ``rubberband-cli``."""

    name = "rubberband-r3"

    def __init__(self, fine: bool = True) -> None:
        if shutil.which("rubberband") is None:
            raise RuntimeError("rubberband-cli is not installed")
        self.args = {"--fine": ""} if fine else {}
        if not fine:
            self.name = "rubberband-r2"

    def stretch(self, audio: Samples, sample_rate: int, rate: float) -> Samples:
        import pyrubberband

        # A fresh dict per call: pyrubberband writes '--tempo' into the one it is given.
        out = pyrubberband.time_stretch(audio, sample_rate, rate, rbargs=dict(self.args))
        return np.asarray(out, dtype=np.float32)


class SignalsmithStretcher(TimeStretcher):
    """Signalsmith Stretch (``python-stretch``): fast, in-process, exact length."""

    name = "signalsmith"

    def stretch(self, audio: Samples, sample_rate: int, rate: float) -> Samples:
        from python_stretch.Signalsmith import Stretch

        processor = Stretch()
        processor.preset(1, float(sample_rate))
        processor.setTimeFactor(rate)
        out = processor.process(np.ascontiguousarray(audio[None, :], dtype=np.float32))
        return np.asarray(out[0], dtype=np.float32)


def build_stretcher(engine: str = "auto") -> TimeStretcher:
    if engine == "signalsmith" or (engine == "auto" and shutil.which("rubberband") is None):
        return SignalsmithStretcher()
    return RubberBandStretcher()
