"""The embedded engines on real data: the models that ship inside packages, loaded once."""

from __future__ import annotations

import time

import jiwer
import numpy as np
import pytest
from support.data import TATOEBA, fleurs, fleurs_text

from livedub.runtime.engines.asr_whisper import WhisperRecognizer
from livedub.runtime.engines.factory import RoutingSynthesizer
from livedub.runtime.engines.mt_apertium import ApertiumTranslator
from livedub.runtime.engines.stretch import RubberBandStretcher, SignalsmithStretcher
from livedub.runtime.engines.tts_espeak import EspeakSynthesizer
from livedub.runtime.engines.tts_kokoro import KokoroSynthesizer
from livedub.runtime.errors import EngineError, ErrorCode

pytestmark = pytest.mark.slow
_norm = jiwer.Compose([jiwer.ToLowerCase(), jiwer.RemovePunctuation(), jiwer.RemoveMultipleSpaces(), jiwer.Strip()])


@pytest.fixture(scope="module")
def asr() -> WhisperRecognizer:
    return WhisperRecognizer()


@pytest.fixture(scope="module")
def kokoro() -> KokoroSynthesizer:
    return KokoroSynthesizer()


def test_whisper_base_from_the_package_transcribes_fleurs(asr, shared_data):
    audio, _ = fleurs("fleurs-en-001")
    transcript = asr.transcribe(audio, language="en")
    assert asr.name == "whisper-base-embedded" and "es" in asr.languages
    assert jiwer.wer(fleurs_text("fleurs-en-001"), _norm(transcript.text)) < 0.25
    assert transcript.speech_start is not None and 0 <= transcript.speech_start < 2


def test_silence_is_empty_and_fast(asr):
    started = time.perf_counter()
    assert not asr.transcribe(np.zeros(6 * 16000, dtype=np.float32), language="en").has_speech
    assert time.perf_counter() - started < 1.0


def test_batched_transcription_matches_single_with_fewer_model_calls(asr, shared_data):
    clips = [fleurs(f"fleurs-en-00{i}")[0][: 5 * 16000] for i in range(3)] + [np.zeros(16000, dtype=np.float32)]
    singles = [asr.transcribe(c, language="en").text for c in clips]
    before = asr.model_calls
    batched = [t.text for t in asr.transcribe_many([(c, "en", None) for c in clips])]
    assert asr.model_calls - before == 1  # four fragments, one model call (the silent one skipped)
    assert batched[3] == ""
    for single, many in zip(singles[:3], batched[:3], strict=True):
        assert jiwer.wer(_norm(single), _norm(many)) < 0.15


def test_apertium_translates_tatoeba_english_to_spanish():
    mt = ApertiumTranslator()
    english, spanish = TATOEBA.read_text().splitlines()[0].split("\t")[:2]
    out = mt.translate(english, source="en", target="es")
    assert out and out != english
    assert mt.supports("en", "es") and mt.supports("en", "fr")  # fr chained through es
    assert not mt.supports("en", "de")
    with pytest.raises(EngineError) as info:
        mt.translate("hello", source="en", target="de")
    assert info.value.code == ErrorCode.UNSUPPORTED_LANGUAGE


def test_kokoro_speaks_spanish_that_whisper_understands(kokoro, asr):
    text = "El agua de la ciudad es limpia y fresca."
    speech = kokoro.synthesize(text, language="es")
    assert speech.sample_rate == 24000 and 1.0 < speech.duration_s < 6.0
    import soxr

    heard = asr.transcribe(soxr.resample(speech.audio, 24000, 16000).astype(np.float32), language="es").text
    assert jiwer.wer(_norm(text), _norm(heard)) < 0.4, heard


def test_kokoro_speed_shortens_speech(kokoro):
    text = "Buenos días a todos los oyentes de esta emisión."
    normal = kokoro.synthesize(text, language="es").duration_s
    fast = kokoro.synthesize(text, language="es", speed=1.3).duration_s
    assert fast < normal * 0.9


def test_routing_sends_languages_kokoro_lacks_to_espeak(kokoro):
    router = RoutingSynthesizer(kokoro, EspeakSynthesizer())
    assert {"es", "fr", "ca", "ru"} <= router.languages
    assert router.engine_for("es") is kokoro
    speech = router.synthesize("Bon dia a tothom.", language="ca")
    assert speech.duration_s > 0.5 and np.abs(speech.audio).max() > 0.05


@pytest.mark.parametrize("stretcher", [RubberBandStretcher(), SignalsmithStretcher()], ids=lambda s: s.name)
@pytest.mark.parametrize("rate", [0.8, 1.25])
def test_stretchers_hit_the_target_length_and_keep_pitch(stretcher, rate):
    sr = 16000
    t = np.arange(3 * sr) / sr
    tone = (0.4 * np.sin(2 * np.pi * 220 * t)).astype(np.float32)
    out = stretcher.stretch(tone, sr, rate)
    assert abs(len(out) - len(tone) / rate) / (len(tone) / rate) < 0.01
    spectrum = np.abs(np.fft.rfft(out[sr // 2 : -sr // 2]))
    peak_hz = np.argmax(spectrum) * sr / (len(out) - sr)
    assert abs(peak_hz - 220) < 5
