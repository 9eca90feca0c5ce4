"""Timed caption cues for one fragment, in the source and the target language.

Source cues come from the ASR's word timestamps where the engine gives them: a cue ends at a pause
(>= ``PAUSE_S``), after sentence punctuation, or before it would pass ``MAX_CHARS`` characters or
``MAX_CUE_S`` seconds (the usual subtitle limits: two lines of ~42 characters, at most ~6 s on screen).

Target cues follow the dub as it will be heard, after the time-stretch and its placement in the
fragment. Kokoro and espeak-ng give no word timings, so the translation is split into the same kind
of readable chunks and laid over the dub's voiced spans in proportion to their characters: pauses
in the dub take no text, and a chunk that falls across a pause is cut there. The timing is therefore
approximate within a span (``target_timing: "proportional"`` on the wire says so).

All times are seconds within the fragment; the client offsets them by the fragment's position.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np

from livedub.runtime.engines.base import Samples, Word

MAX_CHARS = 84
MAX_CUE_S = 6.0
PAUSE_S = 0.5
#: A gap in the dub shorter than this is breath between words, not a pause worth a cue break.
_MIN_GAP_S = 0.25
_SENTENCE_END = re.compile(r"[.!?…;:]['\")»]*$")


@dataclass(frozen=True, slots=True)
class Cue:
    start: float
    end: float
    text: str
    speaker: str | None = None


@dataclass(frozen=True, slots=True)
class FragmentCaptions:
    source: tuple[Cue, ...]
    target: tuple[Cue, ...]
    #: "words" (ASR word timestamps) or "proportional" (text over the voiced spans).
    source_timing: str = "words"


def source_cues(words: tuple[Word, ...] | list[Word], speaker: str | None = None) -> list[Cue]:
    """Readable cues from word timestamps: break at pauses, sentence ends and the length limits."""
    cues: list[Cue] = []
    current: list[Word] = []

    def flush() -> None:
        if current:
            text = " ".join(w.text.strip() for w in current if w.text.strip())
            if text:
                cues.append(Cue(current[0].start, max(current[-1].end, current[0].start), text, speaker))
            current.clear()

    for word in words:
        if current:
            length = sum(len(w.text.strip()) + 1 for w in current) + len(word.text.strip())
            if word.start - current[-1].end >= PAUSE_S or length > MAX_CHARS or word.end - current[0].start > MAX_CUE_S:
                flush()
        current.append(word)
        if _SENTENCE_END.search(word.text.strip()):
            flush()
    flush()
    return cues


def chunks(text: str) -> list[str]:
    """The translation split into cue-sized pieces: sentences, then clauses, then words."""
    pieces: list[str] = []
    for sentence in re.split(r"(?<=[.!?…;:])\s+", text.strip()):
        sentence = sentence.strip()
        while len(sentence) > MAX_CHARS:
            cut = sentence.rfind(", ", 0, MAX_CHARS)
            cut = cut + 1 if cut > MAX_CHARS // 3 else sentence.rfind(" ", 0, MAX_CHARS)
            if cut <= 0:
                cut = MAX_CHARS
            pieces.append(sentence[:cut].strip())
            sentence = sentence[cut:].strip()
        if sentence:
            pieces.append(sentence)
    return pieces


def voiced_spans(audio: Samples, rate: int, frame_s: float = 0.02) -> list[tuple[float, float]]:
    """Where the dub is audible (frame RMS above a level relative to its loudest), gaps < 0.25 s merged."""
    frame = max(1, int(rate * frame_s))
    n = len(audio) // frame
    if n == 0:
        return []
    rms = np.sqrt(np.mean(np.square(audio[: n * frame].reshape(n, frame)), axis=1))
    peak = float(rms.max())
    if peak < 1e-4:
        return []
    voiced = rms > max(peak * 0.05, 1e-4)
    spans: list[tuple[float, float]] = []
    start: int | None = None
    for i, on in enumerate(np.append(voiced, False)):
        if on and start is None:
            start = i
        elif not on and start is not None:
            a, b = start * frame_s, i * frame_s
            if spans and a - spans[-1][1] < _MIN_GAP_S:
                spans[-1] = (spans[-1][0], b)
            else:
                spans.append((a, b))
            start = None
    return spans


def target_cues(text: str, spans: list[tuple[float, float]], speaker: str | None = None) -> list[Cue]:
    """Lay ``text``'s chunks over the voiced ``spans`` in proportion to characters (see module doc)."""
    pieces = chunks(text)
    total_s = sum(b - a for a, b in spans)
    if not pieces or total_s <= 0:
        return []
    total_chars = sum(len(p) for p in pieces)

    def at(offset_s: float) -> tuple[float, int]:
        """Fragment time of a point ``offset_s`` into the voiced speech, and its span index."""
        for i, (a, b) in enumerate(spans):
            if offset_s <= b - a + 1e-9:
                return a + offset_s, i
            offset_s -= b - a
        return spans[-1][1], len(spans) - 1

    cues: list[Cue] = []
    done = 0
    for piece in pieces:
        start, first = at(total_s * done / total_chars)
        done += len(piece)
        end, last = at(total_s * done / total_chars)
        if last > first and end - spans[last][0] < spans[first][1] - start:
            # Mostly before the pause: end the cue where its span ends, not in the next one.
            end = spans[first][1]
        elif last > first:
            start = spans[last][0]
        cues.append(Cue(round(start, 3), round(max(end, start), 3), piece, speaker))
    return cues


def build(
    words: tuple[Word, ...],
    translation: str,
    dub: Samples,
    rate: int,
    speaker: str | None = None,
    *,
    transcript: str = "",
    source: Samples | None = None,
    source_rate: int = 0,
    speech_start: float = 0.0,
) -> FragmentCaptions:
    """Both sides' cues; without ``words``, the ``transcript`` over ``source``'s voiced spans."""
    target = tuple(target_cues(translation, voiced_spans(dub, rate), speaker))
    if words or source is None or not transcript.strip():
        return FragmentCaptions(tuple(source_cues(words, speaker)), target)
    # Speech before the ASR's start is music or noise the VAD skipped: no text there.
    spans = [(max(a, speech_start), b) for a, b in voiced_spans(source, source_rate) if b > speech_start]
    return FragmentCaptions(tuple(target_cues(transcript, spans, speaker)), target, "proportional")
