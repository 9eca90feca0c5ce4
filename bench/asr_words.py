"""What word timestamps (captions) cost the embedded Whisper, and how well they sit on the audio.

    nice -n 10 python -m bench.asr_words [--repeats 3]

The first 6 s of 8 FLEURS clips (2 each en/es/fr/de), on the runtime's batched path:
1. one request at a time, without and with ``words`` (interleaved, medians of ``--repeats``),
   and faster-whisper's own one-by-one ``transcribe(word_timestamps=True)`` for reference;
2. a batch of 4 requests with 0, 2 and 4 of them asking for words (one model call each);
3. timing quality: the first word's start against the speech onset measured from the audio's
   energy (tests/unit/engines/test_asr_words.py), and the median distance of each word's start
   from faster-whisper's own word timestamps.

Writes bench/results/asr_words.json.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from typing import Any

import numpy as np

from bench.run import RESULTS, ROOT, machine

sys.path.insert(0, str(ROOT / "tests"))
from support.data import fleurs

CLIPS = [f"fleurs-{lang}-00{i}" for lang in ("en", "es", "fr", "de") for i in (1, 2)]
SR = 16_000


def onset_s(audio: np.ndarray, frame_s: float = 0.01) -> float:
    frame = int(SR * frame_s)
    n = len(audio) // frame
    level = 10 * np.log10(np.mean(audio[: n * frame].reshape(n, frame) ** 2, axis=1) + 1e-12)
    return float(np.argmax(level > float(np.percentile(level, 10)) + 20)) * frame_s


def timed(fn: Any) -> tuple[float, Any]:
    started = time.perf_counter()
    result = fn()
    return (time.perf_counter() - started) * 1000, result


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    from livedub.runtime.engines.asr_whisper import WhisperRecognizer
    from livedub.runtime.engines.base import AsrRequest

    asr = WhisperRecognizer("embedded")
    fragments = [(clip, clip.split("-")[1], fleurs(clip)[0][: 6 * SR]) for clip in CLIPS]
    asr.transcribe_many([AsrRequest(fragments[0][2], fragments[0][1], words=True)])  # warm

    plain, words, reference = [], [], []
    onset_error, start_delta = [], []
    for _ in range(args.repeats):
        for _clip, lang, audio in fragments:
            ms, _ = timed(lambda a=audio, lang=lang: asr.transcribe_many([AsrRequest(a, lang)]))
            plain.append(ms)
            ms, result = timed(lambda a=audio, lang=lang: asr.transcribe_many([AsrRequest(a, lang, words=True)]))
            words.append(ms)
            ms, segments = timed(
                lambda a=audio, lang=lang: list(
                    asr.model.transcribe(a, language=lang, word_timestamps=True, vad_filter=True)[0]
                )
            )
            reference.append(ms)
            got = result[0].words
            if got and len(onset_error) < len(fragments):
                onset_error.append(abs(got[0].start - onset_s(audio)))
                ref = {w.word.strip(): w.start for s in segments for w in (s.words or ())}
                start_delta += [abs(w.start - ref[w.text]) for w in got if w.text in ref]

    batch: dict[str, list[float]] = {"0": [], "2": [], "4": []}
    group = fragments[::2]  # one clip per language: a mixed-language batch
    for _ in range(args.repeats):
        for asking in (0, 2, 4):
            requests = [AsrRequest(a, lang, words=i < asking) for i, (_, lang, a) in enumerate(group)]
            ms, _ = timed(lambda r=requests: asr.transcribe_many(r))
            batch[str(asking)].append(ms)

    median = statistics.median
    figures = {
        "fragment_s": 6.0,
        "fragments": len(fragments),
        "repeats": args.repeats,
        "single_ms": {
            "without_words": round(median(plain), 1),
            "with_words": round(median(words), 1),
            "faster_whisper_transcribe_word_timestamps": round(median(reference), 1),
        },
        "words_overhead_percent": round(100 * (median(words) / median(plain) - 1), 1),
        "batch_of_4_ms": {f"{k}_with_words": round(median(v), 1) for k, v in batch.items()},
        "first_word_vs_energy_onset_s": {
            "median": round(median(onset_error), 3),
            "max": round(max(onset_error), 3),
        },
        "word_start_vs_faster_whisper_s": {
            "median": round(median(start_delta), 3),
            "p90": round(float(np.percentile(start_delta, 90)), 3),
            "words": len(start_delta),
        },
    }
    out = {"machine": machine(), **figures}
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "asr_words.json").write_text(json.dumps(out, indent=2) + "\n")
    print(json.dumps(figures, indent=2))


if __name__ == "__main__":
    main()
