"""Caption cues (pipeline/captions.py) and their WebVTT files (client/vtt.py), parsed by webvtt-py."""

from __future__ import annotations

import html
import itertools

import numpy as np
import webvtt

from livedub.runtime.client import vtt
from livedub.runtime.engines.base import Word
from livedub.runtime.pipeline import captions as cap

RATE = 16000


def words(text: str, start: float = 0.0, step: float = 0.3, pause_after: dict[int, float] | None = None) -> list[Word]:
    out, t = [], start
    for i, w in enumerate(text.split()):
        out.append(Word(w, t, t + step * 0.8))
        t += step + (pause_after or {}).get(i, 0.0)
    return out


def test_source_cues_break_at_sentences_and_pauses_and_keep_word_times():
    ws = words("Hello there. This is the news at nine tonight", pause_after={5: 0.8})
    cues = cap.source_cues(ws, "S1")
    assert [c.text for c in cues] == ["Hello there.", "This is the news", "at nine tonight"]
    assert cues[0].start == ws[0].start and cues[0].end == ws[1].end
    assert cues[2].start == ws[6].start and cues[-1].end == ws[-1].end
    assert {c.speaker for c in cues} == {"S1"}
    assert all(a.end <= b.start for a, b in itertools.pairwise(cues))


def test_source_cues_respect_the_length_limits():
    ws = words(" ".join(["word"] * 60), step=0.2)  # 12 s of continuous speech, no punctuation
    cues = cap.source_cues(ws)
    assert len(cues) > 1
    assert all(len(c.text) <= cap.MAX_CHARS and c.end - c.start <= cap.MAX_CUE_S for c in cues)
    assert sum(len(c.text.split()) for c in cues) == 60  # no word lost or doubled


def test_no_words_no_cues():
    assert cap.source_cues([]) == []
    assert cap.target_cues("Hola.", []) == []
    assert cap.target_cues("", [(0.0, 1.0)]) == []


def tone(spans: list[tuple[float, float]], total_s: float = 6.0) -> np.ndarray:
    audio = np.zeros(int(total_s * RATE), dtype=np.float32)
    t = np.arange(len(audio)) / RATE
    for a, b in spans:
        mask = (t >= a) & (t < b)
        audio[mask] = 0.3 * np.sin(2 * np.pi * 220 * t[mask])
    return audio


def test_voiced_spans_find_the_dub_and_skip_its_pauses():
    spans = cap.voiced_spans(tone([(0.5, 2.5), (3.5, 5.0)]), RATE)
    assert len(spans) == 2
    (a0, b0), (a1, b1) = spans
    assert abs(a0 - 0.5) < 0.03 and abs(b0 - 2.5) < 0.03 and abs(a1 - 3.5) < 0.03 and abs(b1 - 5.0) < 0.03
    assert cap.voiced_spans(np.zeros(RATE, dtype=np.float32), RATE) == []


def test_target_cues_lie_on_the_voiced_spans_in_character_proportion():
    spans = [(0.5, 2.5), (3.5, 5.5)]
    cues = cap.target_cues("Buenas noches. Estas son las noticias.", spans, "S2")
    assert [c.text for c in cues] == ["Buenas noches.", "Estas son las noticias."]
    assert cues[0].start == 0.5 and cues[-1].end == 5.5
    # 14 of 37 characters: the first cue ends about 14/37 of 4 s into the voiced speech.
    assert abs(cues[0].end - (0.5 + 4 * 14 / 37)) < 0.05
    for c in cues:  # never inside the pause
        assert not (2.5 < c.start < 3.5) and not (2.5 < c.end < 3.5)
    assert all(c.speaker == "S2" for c in cues)


def test_long_translations_are_split_into_readable_chunks():
    text = "Esta es una frase muy larga, con muchas palabras, que no cabe en una sola línea de subtítulos y sigue"
    pieces = cap.chunks(text)
    assert len(pieces) > 1 and all(len(p) <= cap.MAX_CHARS for p in pieces)
    assert " ".join(pieces).split() == text.split()


def test_webvtt_files_parse_and_carry_offsets_speakers_and_escaped_text(tmp_path):
    results = [
        {
            "captions": {
                "source": [{"start_ms": 100, "end_ms": 1900, "text": "Hello <b>&", "speaker": "S1"}],
                "target": [],
            }
        },
        {},  # a failed fragment: no captions
        {
            "captions": {
                "source": [{"start_ms": 0, "end_ms": 0, "text": "Hi"}],
                "target": [{"start_ms": 500, "end_ms": 2500, "text": "Hola", "speaker": "S2"}],
            }
        },
    ]
    written = vtt.write_stream(tmp_path / "out.wav", results, [0.0, 6.0, 3723.5], ("en", "es"))
    assert [p.name for p in written] == ["out.en.vtt", "out.es.vtt"]
    source = webvtt.read(str(written[0]), strict=True)
    assert [(c.start, c.end, c.voice, c.text) for c in source] == [
        # Escaped, so the transcript's "<b>" is text, not a tag (webvtt-py leaves entities as written).
        ("00:00:00.100", "00:00:01.900", "S1", "Hello &lt;b&gt;&amp;"),
        ("01:02:03.500", "01:02:03.700", None, "Hi"),  # zero-length cue widened to be seen
    ]
    assert html.unescape(source[0].text) == "Hello <b>&"
    target = webvtt.from_string(written[1].read_text(), strict=True)
    assert [(c.start, c.end, c.voice, c.text) for c in target] == [("01:02:04.000", "01:02:06.000", "S2", "Hola")]
    empty = vtt.render([])
    assert list(webvtt.from_string(empty, strict=True)) == []


def test_without_word_timestamps_the_source_text_follows_the_source_speech():
    source = tone([(1.0, 3.0), (4.0, 5.5)])
    got = cap.build(
        (),
        "Hola.",
        tone([(0.5, 2.0)]),
        RATE,
        "S1",
        transcript="Hello. How are you?",
        source=source,
        source_rate=RATE,
        speech_start=0.9,
    )
    assert got.source_timing == "proportional"
    assert [c.text for c in got.source] == ["Hello.", "How are you?"]
    assert abs(got.source[0].start - 1.0) < 0.03 and abs(got.source[-1].end - 5.5) < 0.03
    assert [c.text for c in got.target] == ["Hola."] and abs(got.target[0].start - 0.5) < 0.03
    with_words = cap.build(
        tuple(words("Hello there.")), "Hola.", tone([(0.5, 2.0)]), RATE, transcript="x", source=source, source_rate=RATE
    )
    assert with_words.source_timing == "words" and with_words.source[0].text == "Hello there."


def test_a_carriage_return_in_the_text_cannot_end_the_cue_or_start_another(tmp_path):
    """WebVTT ends a line at CR, LF or CRLF, and a cue at a blank line: a translation or a glossary term
    carrying "\\r\\r" must not cut the cue short and turn the rest into a block of its own."""
    text = "uno\r\rdos --> 00:00:09.000 --> 00:00:10.000\rtres\r\ncuatro"
    results = [{"captions": {"source": [], "target": [{"start_ms": 0, "end_ms": 2000, "text": text}]}}]
    _, target_path = vtt.write_stream(tmp_path / "out.wav", results, [0.0], ("en", "es"))
    raw = target_path.read_bytes()
    assert b"\r" not in raw
    (cue,) = webvtt.read(str(target_path), strict=True)
    assert (cue.start, cue.end) == ("00:00:00.000", "00:00:02.000")
    assert html.unescape(cue.text) == "uno dos --> 00:00:09.000 --> 00:00:10.000 tres cuatro"
