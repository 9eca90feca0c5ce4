"""Whisper base from the packaged parts, on real FLEURS speech."""

from __future__ import annotations

import time

import jiwer
import numpy as np
import pytest

from livedub.runtime.engines.asr_whisper import PROMPT_TOKENS, _looks_broken, embedded_model_files
from livedub.runtime.errors import EngineError, ErrorCode
from support.data import fleurs, fleurs_text

pytestmark = pytest.mark.slow
SR = 16_000
_norm = jiwer.Compose([jiwer.ToLowerCase(), jiwer.RemovePunctuation(), jiwer.RemoveMultipleSpaces(), jiwer.Strip()])


def wer(reference: str, hypothesis: str) -> float:
    return float(jiwer.wer(_norm(reference), _norm(hypothesis) or "<empty>"))


def test_packaged_model_is_reassembled_from_both_parts():
    files = embedded_model_files()
    assert set(files) == {"model.bin", "config.json", "tokenizer.json", "vocabulary.txt"}
    assert len(files["model.bin"]) > 140_000_000  # two ~72.6 MB halves


@pytest.mark.parametrize(("clip", "language", "max_wer"), [("fleurs-en-000", "en", 0.25), ("fleurs-es-000", "es", 0.3)])
def test_transcribes_real_speech(whisper, shared_data, clip, language, max_wer):
    audio, rate = fleurs(clip)
    assert rate == SR
    started = time.perf_counter()
    transcript = whisper.transcribe(audio, language=language)
    elapsed = time.perf_counter() - started
    assert whisper.name == "whisper-base-embedded"
    assert transcript.language == language and transcript.language_probability == 1.0
    assert wer(fleurs_text(clip), transcript.text) < max_wer, transcript.text
    assert transcript.speech_start is not None and 0 <= transcript.speech_start < 2
    assert elapsed / (len(audio) / SR) < 1.0  # real time on 2 cores, int8 (measured RTF ~0.15)


def test_silence_never_reaches_the_model(whisper):
    before = whisper.model_calls
    started = time.perf_counter()
    for audio in (np.zeros(6 * SR, np.float32), np.random.default_rng(1).normal(0, 0.01, 6 * SR).astype(np.float32)):
        transcript = whisper.transcribe(audio, language="en")
        assert transcript.text == "" and not transcript.has_speech and transcript.speech_start is None
    assert time.perf_counter() - started < 1.0
    assert whisper.model_calls == before


def test_batch_of_streams_is_one_model_call_with_single_results(whisper, shared_data):
    """Different languages and prompts in one batch, plus a silent fragment."""
    requests = [
        (fleurs("fleurs-en-001")[0][: 6 * SR], "en", None),
        (fleurs("fleurs-es-002")[0][: 6 * SR], "es", "El uso adecuado de los blogs."),
        (np.zeros(3 * SR, np.float32), "fr", "Bonjour."),
        (
            fleurs("fleurs-de-003")[0][: 6 * SR],
            "de",
            "Ein sehr langer vorheriger Satz mit vielen Wörtern, der gekürzt wird.",
        ),
    ]
    before = whisper.model_calls
    singles = [whisper.transcribe(audio, language=lang, prompt=prompt) for audio, lang, prompt in requests]
    assert whisper.model_calls - before == 3  # the silent one costs nothing
    before = whisper.model_calls
    batched = whisper.transcribe_many(requests)
    assert whisper.model_calls - before == 1
    assert [t.text for t in batched] == [t.text for t in singles]
    assert [t.language for t in batched] == ["en", "es", "fr", "de"]
    assert batched[2].text == "" and all(t.text for i, t in enumerate(batched) if i != 2)


def test_prompt_slot_has_one_size_whatever_the_previous_text(whisper):
    short = whisper._prompt("en", "Hi.")
    long = whisper._prompt("es", "palabra " * 200)
    assert len(short) == len(long) == 1 + PROMPT_TOKENS + 4
    assert short.index(whisper._tokenizer("en").sot) == 1 + PROMPT_TOKENS
    assert whisper._prompt("en", None) == whisper._prompt("en", " ... ")  # nothing worth prompting
    assert len(whisper._prompt("en", None)) == 4


def test_prompts_when_enabled_batch_equal_singles_and_guard_loops(whisper, shared_data):
    audio, _ = fleurs("fleurs-en-000")
    first, second = audio[: 6 * SR], audio[6 * SR :]
    whisper.prompt_previous = True
    try:
        previous = whisper.transcribe(first, language="en").text
        single = whisper.transcribe(second, language="en", prompt=previous).text
        before = whisper.model_calls
        batched = whisper.transcribe_many([(second, "en", previous), (first, "en", None)])
        assert whisper.model_calls - before == 2  # prompted and unprompted decode separately
        assert batched[0].text == single and "lag behind" in single
        looping = "los alumnos, " * 40
        assert whisper.transcribe(second, language="en", prompt=looping).text  # guard keeps words
    finally:
        whisper.prompt_previous = False
    assert _looks_broken("los alumnos, " * 30) and _looks_broken("...") and not _looks_broken("Hola a todos.")


def test_speech_longer_than_a_window_is_transcribed_whole(whisper, shared_data):
    clips = ("fleurs-en-000", "fleurs-en-002", "fleurs-en-005")
    audio = np.concatenate([fleurs(clip)[0] for clip in clips])
    assert len(audio) > 32 * SR
    before = whisper.model_calls
    transcript = whisper.transcribe(audio, language="en")
    assert whisper.model_calls - before == 1
    reference = " ".join(fleurs_text(clip) for clip in clips)
    assert wer(reference, transcript.text) < 0.3, transcript.text


def test_word_timestamps_when_asked(whisper, shared_data):
    audio = fleurs("fleurs-en-000")[0]
    whisper.word_timestamps = True
    try:
        transcript = whisper.transcribe(audio, language="en")
    finally:
        whisper.word_timestamps = False
    starts = [w.start for w in transcript.words]
    assert len(transcript.words) >= 10 and starts == sorted(starts)
    assert 0 < transcript.words[-1].end <= len(audio) / SR + 0.5


def test_unsupported_language_is_a_client_error(whisper):
    with pytest.raises(EngineError) as info:
        whisper.transcribe(np.zeros(SR, np.float32), language="xx")
    assert info.value.code == ErrorCode.UNSUPPORTED_LANGUAGE and not info.value.retryable
    assert {"en", "es", "fr", "de", "ja"} <= whisper.languages
