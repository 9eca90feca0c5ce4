"""Whisper base detects the spoken language of real FLEURS fragments, batched as cheaply as alone."""

from __future__ import annotations

import numpy as np
import pytest

from livedub.runtime.engines.base import AsrRequest
from support.data import fleurs

pytestmark = pytest.mark.slow
SR = 16_000


def _fragment(clip: str) -> np.ndarray:
    return fleurs(clip)[0][: 6 * SR]


@pytest.fixture(scope="module")
def fragments(shared_data) -> dict[str, np.ndarray]:
    return {lang: _fragment(f"fleurs-{lang}-001") for lang in ("en", "es", "fr", "de")}


def test_detection_rides_on_the_batch_and_never_changes_the_text(whisper, fragments):
    """Every fragment declared English: detection reports what was spoken, the text stays forced."""
    requests = [AsrRequest(audio, "en", None, True) for audio in fragments.values()]
    plain = whisper.transcribe_many([AsrRequest(audio, "en", None) for audio in fragments.values()])
    before = whisper.model_calls
    detected = whisper.transcribe_many(requests)
    assert whisper.model_calls - before == 1, "detection reuses the batch's encoder output"
    assert [t.language for t in detected] == list(fragments)
    assert all(t.language_probability >= 0.7 for t in detected), [t.language_probability for t in detected]
    assert [t.text for t in detected] == [t.text for t in plain]
    assert [(t.language, t.language_probability) for t in plain] == [("en", 1.0)] * 4


def test_batched_detection_equals_single_detection(whisper, fragments):
    """Mixed batch: languages, a silent fragment, and a request that did not ask for detection."""
    requests = [
        AsrRequest(fragments["es"], "en", None, True),
        AsrRequest(np.zeros(3 * SR, np.float32), "en", None, True),
        AsrRequest(fragments["de"], "de", None, False),
        AsrRequest(fragments["fr"], "es", None, True),
        AsrRequest(fragments["en"], "en", None, True),
    ]
    singles = [whisper.transcribe(r.audio, language=r.language, detect_language=r.detect_language) for r in requests]
    batched = whisper.transcribe_many(requests)
    assert [t.text for t in batched] == [t.text for t in singles]
    assert [t.language for t in batched] == [t.language for t in singles] == ["es", "en", "de", "fr", "en"]
    # Bit-identical on CPU int8; the tolerance is for GPU kernels whose algorithm may depend on batch size.
    assert [t.language_probability for t in batched] == pytest.approx(
        [t.language_probability for t in singles], abs=1e-3
    )
    # Silence is never sent to the model, and a request that did not ask gets no detection.
    assert not batched[1].has_speech and batched[1].language_probability == 1.0
    assert batched[2].language_probability == 1.0


def test_the_one_by_one_path_detects_like_the_window_path(whisper, fragments):
    window = whisper.transcribe(fragments["fr"], language="en", detect_language=True)
    whisper.word_timestamps = True  # word timestamps take faster-whisper's own transcribe()
    try:
        before = whisper.model_calls
        full = whisper.transcribe(fragments["fr"], language="en", detect_language=True)
        assert whisper.model_calls - before == 2, "one extra encode for detection, nothing more"
    finally:
        whisper.word_timestamps = False
    assert full.words and full.language == window.language == "fr"
    assert full.language_probability == pytest.approx(window.language_probability, abs=1e-3)


def test_batches_with_prompts_detect_once_per_request(whisper, fragments):
    """Prompted and unprompted requests decode in separate calls; each still gets its own detection."""
    whisper.prompt_previous = True
    try:
        requests = [
            AsrRequest(fragments["es"], "es", "El uso adecuado de los blogs.", True),
            AsrRequest(fragments["de"], "es", None, True),
        ]
        singles = [
            whisper.transcribe(r.audio, language=r.language, prompt=r.prompt, detect_language=True) for r in requests
        ]
        batched = whisper.transcribe_many(requests)
    finally:
        whisper.prompt_previous = False
    assert [t.language for t in batched] == [t.language for t in singles] == ["es", "de"]
    assert [t.text for t in batched] == [t.text for t in singles]
