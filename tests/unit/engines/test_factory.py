"""Which backends the configuration builds, and what the set offers."""

from __future__ import annotations

import shutil
import sys

import pytest
from pydantic import SecretStr

from livedub.runtime.config import Settings
from livedub.runtime.engines import factory
from livedub.runtime.engines.factory import (
    RoutingSynthesizer,
    build_engines,
    build_translator,
    build_tts,
    dubbing_pairs,
    supported_languages,
)
from livedub.runtime.engines.mt_apertium import ApertiumTranslator
from livedub.runtime.engines.tts_espeak import EspeakSynthesizer
from livedub.runtime.errors import ModelLoadError

pytestmark = pytest.mark.slow


def settings(**fields) -> Settings:
    return Settings(_env_file=None, **fields)


@pytest.fixture
def shared_models(monkeypatch, whisper, kokoro):
    """Reuse the session's loaded models instead of loading them again."""
    monkeypatch.setattr(factory, "build_asr", lambda _settings: whisper)
    monkeypatch.setattr("livedub.runtime.engines.tts_kokoro.KokoroSynthesizer", lambda **_: kokoro)


def test_default_set_is_the_embedded_one(shared_models):
    engines = build_engines(settings())
    described = engines.describe()
    assert described["asr"] == "whisper-base-embedded"
    assert described["tts"] == "kokoro+espeak-ng-library"
    # Per target language, the engine that really speaks it (what stream:ready reports).
    assert engines.describe("es")["tts"] == "kokoro"
    assert engines.describe("nl")["tts"] == "espeak-ng-library"
    assert isinstance(engines.tts, RoutingSynthesizer)
    if shutil.which("apertium"):
        assert described["translation"] == "apertium"
        assert {("en", "es"), ("es", "en"), ("en", "fr")} <= dubbing_pairs(engines)
        languages = supported_languages(engines)
        assert "en" in languages["source"] and {"es", "fr"} <= set(languages["target"])
    if shutil.which("rubberband"):
        assert described["duration_matching"] == "rubberband-r3"


def test_explicit_choices(shared_models):
    assert isinstance(build_tts(settings(tts_engine="espeak")), EspeakSynthesizer)
    assert build_tts(settings(tts_engine="kokoro")).name == "kokoro"
    assert build_engines(settings(stretch_engine="signalsmith")).stretcher.name == "signalsmith"
    assert isinstance(build_translator(settings(mt_engine="apertium")), ApertiumTranslator)


def test_auto_tts_falls_back_to_espeak_when_kokoro_is_missing(monkeypatch):
    def missing(**_):
        raise ModelLoadError("Kokoro model packages are not installed")

    monkeypatch.setattr("livedub.runtime.engines.tts_kokoro.KokoroSynthesizer", missing)
    assert isinstance(build_tts(settings()), EspeakSynthesizer)
    with pytest.raises(ModelLoadError):
        build_tts(settings(tts_engine="kokoro"))


def test_deepl_is_chosen_by_key_and_wrapped_with_the_fallback():
    with pytest.raises(ModelLoadError, match="DEEPL_AUTH_KEY"):
        build_translator(settings(mt_engine="deepl"))
    translator = build_translator(settings(deepl_auth_key=SecretStr("k:fx"), deepl_server_url="http://127.0.0.1:9"))
    expected = "FallbackTranslator" if shutil.which("apertium") else "DeepLTranslator"
    assert type(translator).__name__ == expected
    alone = build_translator(
        settings(
            mt_engine="deepl",
            deepl_auth_key=SecretStr("k:fx"),
            deepl_server_url="http://127.0.0.1:9",
            mt_fallback=False,
        )
    )
    assert type(alone).__name__ == "DeepLTranslator"


def test_missing_production_backends_are_load_errors(monkeypatch):
    monkeypatch.setitem(sys.modules, "livedub.runtime.engines.tts_xtts", None)  # import fails
    with pytest.raises(ModelLoadError, match="xtts"):
        build_tts(settings(tts_engine="xtts"))
    monkeypatch.setitem(sys.modules, "livedub.runtime.engines.mt_deepl", None)
    with pytest.raises(ModelLoadError, match="deepl"):
        build_translator(settings(mt_engine="deepl", deepl_auth_key=SecretStr("k:fx")))
