"""Build the engine set from configuration: the only place that knows which backend is which.

Runs once at start-up in a worker thread (it loads models). Production backends are imported only
when chosen, so the embedded install never imports torch or the DeepL client.
"""

from __future__ import annotations

import logging

from livedub.runtime.config import Settings
from livedub.runtime.engines.base import Engines, Speech, SpeechRecognizer, Synthesizer, Translator, VoiceProfile
from livedub.runtime.errors import EngineError, ErrorCode, ModelLoadError

log = logging.getLogger(__name__)


class RoutingSynthesizer(Synthesizer):
    """Dispatch by language: the first engine that speaks it (Kokoro first, espeak-ng for the rest)."""

    def __init__(self, *engines: Synthesizer) -> None:
        self.engines = [e for e in engines if e.languages]
        self.name = "+".join(e.name for e in self.engines)

    @property
    def languages(self) -> frozenset[str]:
        return frozenset().union(*(e.languages for e in self.engines))

    def engine_for(self, language: str) -> Synthesizer:
        base = language.split("-")[0].lower()
        for engine in self.engines:
            if base in engine.languages:
                return engine
        raise EngineError(ErrorCode.UNSUPPORTED_LANGUAGE, f"no TTS engine speaks '{language}'", retryable=False)

    def synthesize(self, text: str, *, language: str, voice: VoiceProfile | None = None, speed: float = 1.0) -> Speech:
        return self.engine_for(language).synthesize(text, language=language, voice=voice, speed=speed)

    def validate_voice(self, voice: VoiceProfile) -> None:
        if voice.language:
            self.engine_for(voice.language).validate_voice(voice)


def build_asr(settings: Settings) -> SpeechRecognizer:
    from livedub.runtime.engines.asr_whisper import WhisperRecognizer

    return WhisperRecognizer(
        settings.asr_model_size,
        model_path=settings.asr_model_path,
        device=settings.asr_device,
        compute_type=settings.asr_compute_type,
        beam_size=settings.asr_beam_size,
        cpu_threads=settings.asr_cpu_threads,
    )


def build_translator(settings: Settings) -> Translator:
    from livedub.runtime.engines.mt_apertium import ApertiumTranslator

    embedded = ApertiumTranslator()
    use_deepl = settings.mt_engine == "deepl" or (settings.mt_engine == "auto" and settings.deepl_auth_key is not None)
    if not use_deepl:
        return embedded
    if settings.deepl_auth_key is None:
        raise ModelLoadError("MT_ENGINE=deepl needs DEEPL_AUTH_KEY")
    try:
        from livedub.runtime.engines.mt_deepl import DeepLTranslator
    except ImportError as exc:
        raise ModelLoadError(f"MT_ENGINE=deepl needs the deepl client (pip install 'livedub[deepl]'): {exc}") from exc
    stage_s = settings.translation_timeout_ms / 1000
    # DeepL's own retries must end before the stage timeout, leaving time for the fallback.
    deepl = DeepLTranslator(
        settings.deepl_auth_key,
        server_url=settings.deepl_server_url,
        timeout_s=min(2.0, stage_s / 2),
        deadline_s=max(0.2, stage_s - 0.5),
    )
    if not settings.mt_fallback or not embedded.pairs:
        return deepl
    from livedub.runtime.engines.mt_fallback import FallbackTranslator

    return FallbackTranslator(deepl, embedded)


def build_tts(settings: Settings) -> Synthesizer:
    from livedub.runtime.engines.tts_espeak import EspeakSynthesizer

    if settings.tts_engine == "xtts":
        from livedub.runtime.engines.tts_xtts import XTTSSynthesizer

        return XTTSSynthesizer(settings.tts_model_path, device=settings.tts_device)
    if settings.tts_engine == "espeak":
        return EspeakSynthesizer()
    from livedub.runtime.engines.tts_kokoro import KokoroSynthesizer

    kokoro = KokoroSynthesizer()
    if settings.tts_engine == "kokoro":
        return kokoro
    return RoutingSynthesizer(kokoro, EspeakSynthesizer())


def build_engines(settings: Settings) -> Engines:
    from livedub.runtime.engines.stretch import build_stretcher

    engines = Engines(
        asr=build_asr(settings),
        translator=build_translator(settings),
        tts=build_tts(settings),
        stretcher=build_stretcher(settings.stretch_engine),
    )
    log.info("engines built", extra=engines.describe())
    return engines
