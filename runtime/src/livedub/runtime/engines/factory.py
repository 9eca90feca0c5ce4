"""Build the engine set from configuration: the only place that knows which backend is which.

Runs once at start-up in a worker thread (it loads models). Production backends are imported only
when chosen, so the embedded install never imports torch or the DeepL client. A backend that was
asked for by name and cannot load is a :class:`ModelLoadError` (the process must not report ready);
``auto`` settles for what is installed and says so in the log.

Choices (see docs/engines.md):

* ASR: faster-whisper; ``ASR_MODEL_SIZE=embedded`` is Whisper base from the packaged parts.
* MT: ``auto`` = DeepL when ``DEEPL_AUTH_KEY`` is set (with Apertium as fallback when
  ``MT_FALLBACK``), else Apertium. ``llm`` = a local GGUF on llama.cpp (Apertium for rejected answers).
* TTS: ``auto`` = Kokoro for the languages it speaks, espeak-ng for the rest (:class:`RoutingSynthesizer`).
* Duration matching: ``auto`` = Rubber Band R3, else Signalsmith (``stretch.py`` has the measurement).
"""

from __future__ import annotations

import logging

from livedub.runtime.config import Settings
from livedub.runtime.engines.base import (
    Engines,
    Speech,
    SpeechRecognizer,
    Synthesizer,
    Translator,
    VoiceProfile,
    base_language,
)
from livedub.runtime.engines.separation_base import Separator
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
        base = base_language(language)
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

    asr = WhisperRecognizer(
        settings.asr_model_size,
        model_path=settings.asr_model_path,
        device=settings.asr_device,
        compute_type=settings.asr_compute_type,
        beam_size=settings.asr_beam_size,
        cpu_threads=settings.asr_cpu_threads,
        prompt_previous=settings.asr_prompt_previous,
    )
    asr.max_batch = settings.sizing(asr.device).asr_max_batch  # "auto" is resolved only once the model loaded
    return asr


def build_translator(settings: Settings) -> Translator:
    from livedub.runtime.engines.mt_apertium import ApertiumTranslator

    embedded = ApertiumTranslator()
    if settings.mt_engine == "llm":
        return build_llm_translator(settings, embedded)
    use_deepl = settings.mt_engine == "deepl" or (settings.mt_engine == "auto" and settings.deepl_auth_key is not None)
    if not use_deepl:
        return embedded
    if settings.deepl_auth_key is None:
        raise ModelLoadError("MT_ENGINE=deepl needs DEEPL_AUTH_KEY")
    try:
        from livedub.runtime.engines.mt_deepl import DeepLTranslator
    except ImportError as exc:
        raise ModelLoadError(
            f"MT_ENGINE=deepl needs the deepl client (pip install 'livedub-runtime[deepl]'): {exc}"
        ) from exc
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


def build_llm_translator(settings: Settings, embedded: Translator) -> Translator:
    try:
        from livedub.runtime.engines.mt_llm import LlmTranslator
    except ImportError as exc:  # pragma: no cover - the module imports only the standard library
        raise ModelLoadError(f"MT_ENGINE=llm cannot import its backend: {exc}") from exc
    return LlmTranslator(
        settings.mt_model_path,
        cache_dir=settings.mt_cache_dir,
        device=settings.mt_device,
        cpu_threads=settings.mt_cpu_threads,
        parallel=settings.mt_parallel,
        # A rejected LLM answer (empty, runaway) is translated by Apertium instead, when allowed.
        fallback=embedded if settings.mt_fallback and embedded.pairs else None,
    )


def build_tts(settings: Settings) -> Synthesizer:
    from livedub.runtime.engines.tts_espeak import EspeakSynthesizer

    if settings.tts_engine == "xtts":
        try:
            from livedub.runtime.engines.tts_xtts import XTTSSynthesizer
        except ImportError as exc:
            raise ModelLoadError(
                f"TTS_ENGINE=xtts needs the XTTS extra (pip install 'livedub-runtime[production]'): {exc}"
            ) from exc
        return XTTSSynthesizer(settings.tts_model_path, device=settings.tts_device)
    if settings.tts_engine == "espeak":
        return EspeakSynthesizer(backend="auto")
    from livedub.runtime.engines.tts_kokoro import KokoroSynthesizer

    def kokoro_engine() -> KokoroSynthesizer:
        return KokoroSynthesizer(cpu_threads=settings.tts_cpu_threads, spinning=settings.tts_thread_spinning)

    if settings.tts_engine == "kokoro":
        return kokoro_engine()
    espeak = EspeakSynthesizer(backend="auto")
    try:
        kokoro = kokoro_engine()
    except ModelLoadError as exc:
        if not espeak.languages:
            raise
        log.warning("Kokoro unavailable (%s): TTS_ENGINE=auto uses espeak-ng for every language", exc)
        return espeak
    return RoutingSynthesizer(kokoro, espeak)


def build_engines(settings: Settings) -> Engines:
    from livedub.runtime.engines.stretch import build_stretcher

    engines = Engines(
        asr=build_asr(settings),
        translator=build_translator(settings),
        tts=build_tts(settings),
        stretcher=build_stretcher(settings.stretch_engine),
    )
    separator = build_separator(settings)
    if separator is not None:
        engines.extras["separation"] = separator
    log.info("engines built", extra=engines.describe())
    return engines


def build_separator(settings: Settings) -> Separator | None:
    """The separation engine for mix 'background', started and warmed (its first call builds the graph)."""
    separator: Separator
    if settings.separation_engine == "none":
        return None
    if settings.separation_engine == "demucs":
        from livedub.runtime.engines.separation_demucs import DemucsSeparator

        separator = DemucsSeparator(settings.separation_model_path, device=settings.separation_device)
    else:
        from livedub.runtime.engines.separation_spleeter import SpleeterSeparator

        separator = SpleeterSeparator(settings.separation_python)
    separator.warm_up()
    return separator


def dubbing_pairs(engines: Engines) -> frozenset[tuple[str, str]]:
    """(source, target) pairs the whole set can dub: ASR hears source, MT has the pair, TTS speaks target."""
    asr, tts = engines.asr.languages, engines.tts.languages
    return frozenset((s, t) for s, t in engines.translator.pairs if s in asr and t in tts)


def supported_languages(engines: Engines) -> dict[str, list[str]]:
    """Source and target languages that take part in at least one dubbing pair (for docs and stream:ready)."""
    pairs = dubbing_pairs(engines)
    return {"source": sorted({s for s, _ in pairs}), "target": sorted({t for _, t in pairs})}
