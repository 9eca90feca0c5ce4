"""Engine fixtures: each real model is loaded once per test session (they take seconds and RAM)."""

from __future__ import annotations

import pytest


@pytest.fixture(scope="session")
def whisper():
    from livedub.runtime.engines.asr_whisper import WhisperRecognizer

    return WhisperRecognizer("embedded")


@pytest.fixture(scope="session")
def kokoro():
    from livedub.runtime.engines.tts_kokoro import KokoroSynthesizer

    return KokoroSynthesizer()


@pytest.fixture(scope="session")
def espeak():
    from livedub.runtime.engines.tts_espeak import EspeakSynthesizer

    return EspeakSynthesizer("library")
