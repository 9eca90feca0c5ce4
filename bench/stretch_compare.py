"""Compare the time-stretch backends on real speech: speed, length, fidelity, ASR after stretching.

    python -m bench.stretch_compare            # writes bench/results/stretch_compare.json

For each backend and rate (the runtime's range is SPEED_RATIO_MIN 0.75 .. SPEED_RATIO_MAX 1.6):
* ``ms``: median wall time of 3 calls on the first 6 s of FLEURS clips (16 kHz);
* ``onset_error_ms``: how far tone bursts land from their ideal stretched position;
* ``length_error``: samples away from ``round(len / rate)`` before ``fit_length`` (raw backend);
* ``roundtrip_lsd_db``: log-spectral distance between the original and the audio stretched by
  ``rate`` then by ``1 / rate`` (lower = less damage; two passes double every artefact);
* ``wer``: Whisper base (embedded) word error rate on the stretched clips vs the FLEURS transcripts,
  next to the unstretched baseline.
"""

from __future__ import annotations

import json
import re
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import soundfile as sf

from livedub.runtime.engines.stretch import RubberBandStretcher, SignalsmithStretcher

FLEURS = Path("/work/shared/data/fleurs")
RESULTS = Path(__file__).parent / "results" / "stretch_compare.json"
RATES = (0.8, 1.25, 1.6)
CLIPS = ("en-000", "es-000", "fr-000", "de-000")
SR = 16_000


def log_spectral_distance(a: np.ndarray, b: np.ndarray, n_fft: int = 512, hop: int = 128) -> float:
    """Mean over frames of the RMS difference of log-magnitude spectra (dB), on speech frames only."""
    n = min(len(a), len(b))
    window = np.hanning(n_fft).astype(np.float32)
    frames = range(0, n - n_fft, hop)
    spec_a = np.abs(np.fft.rfft(np.stack([a[i : i + n_fft] * window for i in frames]), axis=1))
    spec_b = np.abs(np.fft.rfft(np.stack([b[i : i + n_fft] * window for i in frames]), axis=1))
    energy = spec_a.sum(axis=1)
    speech = energy > np.percentile(energy, 30)  # skip pauses: their dB noise floor dominates otherwise
    diff = 20 * np.log10(spec_a[speech] + 1e-5) - 20 * np.log10(spec_b[speech] + 1e-5)
    return float(np.mean(np.sqrt(np.mean(diff**2, axis=1))))


def onset_error_ms(backend: object, rate: float) -> float:
    """Worst shift (ms) of three 440 Hz bursts (at 1, 3, 5 s) from where the tempo change puts them."""
    burst = np.sin(2 * np.pi * 440 * np.arange(400) / SR).astype(np.float32)
    signal = np.zeros(6 * SR, np.float32)
    for second in (1, 3, 5):
        signal[second * SR : second * SR + 400] = burst
    out = np.abs(backend.stretch(signal, SR, rate)) > 0.05  # type: ignore[attr-defined]
    errors = []
    for second in (1, 3, 5):
        expected = second * SR / rate
        start = int(expected) - SR // 4
        errors.append(abs(int(np.argmax(out[start:])) + start - expected) / SR * 1000)
    return round(max(errors), 1)


def words(text: str) -> str:
    return " ".join(re.sub(r"[^\w\s']", " ", text.lower()).split())


def main() -> int:
    import jiwer

    from livedub.runtime.engines.asr_whisper import WhisperRecognizer

    clips = []
    for clip in CLIPS:
        audio, rate = sf.read(FLEURS / f"fleurs-{clip}.ogg", dtype="float32")
        assert rate == SR
        clips.append((clip[:2], audio, words((FLEURS / f"fleurs-{clip}.txt").read_text())))
    six = clips[0][1][: 6 * SR]
    asr = WhisperRecognizer("embedded")

    def wer(audios: list[np.ndarray]) -> float:
        hyps = [words(asr.transcribe(a, language=lang).text) for a, (lang, _, _) in zip(audios, clips, strict=True)]
        return float(jiwer.wer([ref for _, _, ref in clips], hyps))

    backends = [RubberBandStretcher(fine=True), RubberBandStretcher(fine=False), SignalsmithStretcher()]
    report: dict[str, object] = {"clip_seconds": 6, "sample_rate": SR, "baseline_wer": wer([a for _, a, _ in clips])}
    rows = []
    for backend in backends:
        for rate in RATES:
            times, raw = [], None
            for _ in range(3):
                started = time.perf_counter()
                raw = backend.raw_stretch(six, SR, rate)
                times.append(time.perf_counter() - started)
            assert raw is not None
            back = backend.stretch(backend.stretch(six, SR, rate), SR, 1 / rate)
            rows.append(
                {
                    "backend": backend.name,
                    "rate": rate,
                    "ms": round(statistics.median(times) * 1000, 1),
                    "length_error": len(raw) - round(len(six) / rate),
                    "onset_error_ms": onset_error_ms(backend, rate),
                    "roundtrip_lsd_db": round(log_spectral_distance(six, back), 2),
                    "wer": round(wer([backend.stretch(a, SR, rate) for _, a, _ in clips]), 3),
                }
            )
    report["rows"] = rows
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(report, indent=2) + "\n")
    print(f"baseline WER (unstretched): {report['baseline_wer']:.3f}")
    print(f"{'backend':<15} {'rate':>5} {'ms':>7} {'len err':>8} {'onset ms':>9} {'rt LSD dB':>10} {'WER':>6}")
    for row in rows:
        print(
            f"{row['backend']:<15} {row['rate']:>5} {row['ms']:>7} {row['length_error']:>8} {row['onset_error_ms']:>9} "
            f"{row['roundtrip_lsd_db']:>10} {row['wer']:>6}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
