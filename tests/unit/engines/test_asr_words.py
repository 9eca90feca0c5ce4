"""Word timestamps on the batched Whisper path (engines/asr_words.py), on real FLEURS speech.

The reference for "where the speech is" is measured from the audio itself (frame energy against
the clip's own noise floor), not from Silero VAD, which the ASR uses to crop its window, nor from
Whisper: a test that compared Whisper with itself could not catch a wrong offset.
"""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from livedub.runtime.engines.base import AsrRequest
from livedub.runtime.pipeline import captions as cap
from support.data import fleurs

pytestmark = pytest.mark.slow
SR = 16_000
FRAGMENT_S = 6.0


def onset_s(audio: np.ndarray, frame_s: float = 0.01) -> float:
    """First 10 ms frame whose energy is 20 dB over the clip's quietest tenth (the room's floor)."""
    frame = int(SR * frame_s)
    n = len(audio) // frame
    level = 10 * np.log10(np.mean(audio[: n * frame].reshape(n, frame) ** 2, axis=1) + 1e-12)
    floor = float(np.percentile(level, 10))
    return float(np.argmax(level > floor + 20)) * frame_s


def fragment(clip: str) -> np.ndarray:
    audio, rate = fleurs(clip)
    assert rate == SR
    return audio[: int(FRAGMENT_S * SR)]


@pytest.mark.parametrize(
    ("clip", "language"), [("fleurs-en-001", "en"), ("fleurs-es-001", "es"), ("fleurs-de-002", "de")]
)
def test_words_and_cues_fall_where_the_speech_is(whisper, shared_data, clip, language):
    audio = fragment(clip)
    transcript = whisper.transcribe_many([AsrRequest(audio, language, words=True)])[0]
    words = transcript.words
    assert len(words) >= 5, transcript.text
    # The words are the transcript: same text, in order, inside the fragment, never overlapping.
    assert " ".join(w.text for w in words).split() == transcript.text.split()
    assert all(0 <= w.start <= w.end <= FRAGMENT_S for w in words)
    assert all(a.end <= b.start + 1e-6 for a, b in itertools.pairwise(words))
    speech = onset_s(audio)
    assert abs(words[0].start - speech) < 0.3, (words[0], speech)
    # Against faster-whisper's own (one-by-one) word timestamps: same DTW, same model, its own encode.
    segments, _ = whisper.model.transcribe(audio, language=language, word_timestamps=True, vad_filter=True)
    reference = [w for s in segments for w in (s.words or ())]
    starts = {w.word.strip(): w.start for w in reference}
    shared = [abs(w.start - starts[w.text]) for w in words if w.text in starts]
    assert len(shared) >= len(words) // 2 and float(np.median(shared)) < 0.15, shared

    cues = cap.build(words, "", np.zeros(int(FRAGMENT_S * 24_000), np.float32), 24_000).source
    assert cues and abs(cues[0].start - speech) < 0.3
    assert all(0 <= c.start <= c.end <= FRAGMENT_S for c in cues)
    assert all(a.end <= b.start + 1e-6 for a, b in itertools.pairwise(cues))
    # Each cue starts and ends exactly on a word boundary.
    edges = {(w.start, w.end) for w in words}
    assert {c.start for c in cues} <= {s for s, _ in edges} and {c.end for c in cues} <= {e for _, e in edges}


def test_a_batch_mixes_requests_with_and_without_words(whisper, shared_data):
    en, es, fr = fragment("fleurs-en-001"), fragment("fleurs-es-001"), fragment("fleurs-fr-001")
    alone = {
        "en": whisper.transcribe_many([AsrRequest(en, "en", words=True)])[0],
        "es": whisper.transcribe_many([AsrRequest(es, "es")])[0],
        "fr": whisper.transcribe_many([AsrRequest(fr, "fr", words=True)])[0],
    }
    before = whisper.model_calls
    batch = whisper.transcribe_many(
        [
            AsrRequest(en, "en", words=True),
            AsrRequest(es, "es"),
            AsrRequest(np.zeros(3 * SR, np.float32), "en", words=True),  # silence: no words, no model
            AsrRequest(fr, "fr", words=True),
            AsrRequest(en, "en"),
        ]
    )
    assert whisper.model_calls - before == 1  # still one encode + generate for the whole batch
    assert batch[1].words == () and batch[4].words == () and batch[2].words == () and batch[2].text == ""
    assert batch[4].text == alone["en"].text and batch[1].text == alone["es"].text
    for got, want in ((batch[0], alone["en"]), (batch[3], alone["fr"])):
        assert got.text == want.text and len(got.words) == len(want.words) >= 5
        assert [w.text for w in got.words] == [w.text for w in want.words]
        assert max(abs(a.start - b.start) for a, b in zip(got.words, want.words, strict=True)) < 0.05
