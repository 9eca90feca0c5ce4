"""The language check's decision (pure) and its settings."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from livedub.runtime.config import Settings
from livedub.runtime.engines.base import Transcript
from livedub.runtime.errors import ErrorCode, Stage
from livedub.runtime.pipeline.language import DEFAULT_MIN_PROBABILITY, find_mismatch
from livedub.runtime.protocol.events import StreamInit


def test_a_confident_other_language_is_a_mismatch_with_a_clear_error():
    mismatch = find_mismatch("en-US", Transcript("Se recomienda a los viajeros.", "es", 0.97), 0.7)
    assert mismatch is not None and (mismatch.source, mismatch.detected) == ("en", "es")
    error = mismatch.error()
    assert error.code is ErrorCode.LANGUAGE_MISMATCH and error.stage is Stage.ASR and not error.retryable
    assert "'es'" in error.message and "0.970" in error.message and "'en'" in error.message


@pytest.mark.parametrize(
    ("source", "transcript"),
    [
        ("en", Transcript("", "es", 0.99)),  # silence is never a mismatch
        ("en", Transcript("   ", "es", 0.99)),
        ("en", Transcript("Hello there.", "en", 0.99)),
        ("pt-BR", Transcript("Olá a todos.", "pt", 0.99)),  # regional variants share the base code
        ("en", Transcript("ma hache.", "fr", 0.55)),  # an unsure guess is not evidence
        ("en", Transcript("Hello there.", "en")),  # no detection ran: the requested language, 1.0
    ],
)
def test_no_mismatch(source, transcript):
    assert find_mismatch(source, transcript, 0.7) is None


def test_the_threshold_is_inclusive():
    assert find_mismatch("en", Transcript("Hola.", "es", 0.7), 0.7) is not None


def test_settings_default_off_and_the_measured_threshold(monkeypatch):
    settings = Settings(_env_file=None)
    assert settings.asr_language_check == "off"
    assert settings.asr_language_min_probability == DEFAULT_MIN_PROBABILITY == 0.7
    monkeypatch.setenv("ASR_LANGUAGE_CHECK", "refuse")
    monkeypatch.setenv("ASR_LANGUAGE_MIN_PROBABILITY", "0.9")
    settings = Settings(_env_file=None)
    assert settings.asr_language_check == "refuse" and settings.asr_language_min_probability == 0.9


@pytest.mark.parametrize("env", [{"ASR_LANGUAGE_CHECK": "strict"}, {"ASR_LANGUAGE_MIN_PROBABILITY": "1.5"}])
def test_bad_values_fail_fast(monkeypatch, env):
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    with pytest.raises(ValidationError):
        Settings(_env_file=None)


def test_stream_init_may_choose_its_own_check_and_omitting_it_changes_nothing():
    base = {"source_language": "en", "target_language": "es"}
    assert StreamInit.model_validate(base).language_check is None
    assert StreamInit.model_validate({**base, "language_check": "warn"}).language_check == "warn"
    with pytest.raises(ValidationError):
        StreamInit.model_validate({**base, "language_check": "maybe"})
