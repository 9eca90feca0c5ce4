"""From a validated ``stream:init`` to a stream session: languages, voice, language check, deadline.

Everything here is a decision about whether and how a stream can be served by this process's
engines; it raises the typed error a refused ``stream:init`` is answered with.
"""

from __future__ import annotations

from typing import Any

from livedub.runtime.config import Settings
from livedub.runtime.engines.base import Engines, TranslationOptions
from livedub.runtime.errors import DubbingError, ErrorCode, Stage
from livedub.runtime.pipeline.language import LanguageCheck
from livedub.runtime.pipeline.mix import DuckCarry, MixOptions
from livedub.runtime.protocol import events as ev
from livedub.runtime.session.backpressure import Thresholds
from livedub.runtime.session.session import StreamConfig, StreamSession


class StreamFactory:
    def __init__(self, settings: Settings, engines: Engines, voices: Any, thresholds: Thresholds) -> None:
        self.settings = settings
        self.engines = engines
        self.voices = voices  # VoiceRegistry or None
        self.thresholds = thresholds

    def check_languages(self, init: ev.StreamInit) -> None:
        src, dst = init.source_language, init.target_language
        engines = self.engines
        problems = []
        if src not in engines.asr.languages:
            problems.append(f"ASR ({engines.asr.name}) cannot transcribe '{src}'")
        if not engines.translator.supports(src, dst):
            problems.append(f"translation ({engines.translator.name}) has no {src}->{dst} pair")
        if dst not in engines.tts.languages:
            problems.append(f"TTS ({engines.tts.name}) cannot speak '{dst}'")
        if problems:
            raise DubbingError(ErrorCode.UNSUPPORTED_LANGUAGE, "; ".join(problems), stage=Stage.SESSION)

    def session(self, key: str, stream_id: str, init: ev.StreamInit, dialect: str) -> StreamSession:
        """A new session for ``init`` (languages already checked); ``key`` names its source-voice buffer."""
        voice = self._resolve_voice(init)
        config = StreamConfig(
            stream_id=stream_id,
            source_language=init.source_language,
            target_language=init.target_language,
            voice=voice,
            translation=TranslationOptions(
                formality=init.formality,
                glossary_id=init.glossary_id,
                domain_hints=init.domain_hints,
                glossary=tuple((entry.source, entry.target) for entry in init.glossary),
            ),
            input_sample_rate=init.sample_rate_hz,
            input_channels=init.channels,
            input_format=init.format,
            output_format=init.output_format,
            output_sample_rate=init.output_sample_rate_hz,
            language_check=self._language_check(init),
            timeout_ms=init.timeout_ms or self.settings.fragment_timeout_ms,
            domain_hints=init.domain_hints,
            dialect=dialect,
            mix=self.mix(init),
            captions=self.settings.captions if init.captions is None else init.captions,
        )
        session = StreamSession(config, self.thresholds)
        if config.mix.mode == "voiceover":
            session.duck_carry = DuckCarry()
        if (init.speakers or self.settings.speakers) == "auto":
            from livedub.runtime.pipeline.speakers import SpeakerTracker, caster_for

            source = voice is not None and voice.name == "source"
            session.speakers = SpeakerTracker(
                key,
                threshold=self.settings.speaker_similarity,
                max_speakers=self.settings.speakers_max,
                # Cloning: each speaker's own speech is its voice; else a built-in voice per speaker.
                caster=None if source else caster_for(self.engines.tts, init.target_language),
                clone=source,
            )
        if voice is not None and voice.name == "source":
            from livedub.runtime.engines.voices import SourceAudioBuffer

            session.source_audio = SourceAudioBuffer(key, 16000)
        return session

    def _resolve_voice(self, init: ev.StreamInit) -> Any:
        if not init.voice_profile:
            return None
        if self.voices is None:
            raise DubbingError(
                ErrorCode.INVALID_VOICE_PROFILE,
                f"voice profile '{init.voice_profile}' not found: no voices file loaded",
                stage=Stage.SESSION,
            )
        voice = self.voices.get(init.voice_profile)
        if voice.language and voice.language != init.target_language and voice.name != "source":
            raise DubbingError(
                ErrorCode.INVALID_VOICE_PROFILE,
                f"voice profile '{voice.name}' speaks '{voice.language}', stream targets '{init.target_language}'",
                stage=Stage.SESSION,
            )
        if voice.name == "source":
            if not getattr(self.engines.tts, "supports_source_voice", False):
                raise DubbingError(
                    ErrorCode.INVALID_VOICE_PROFILE,
                    f"voice 'source' clones the speaker and needs a cloning TTS (TTS_ENGINE=xtts); "
                    f"this runtime uses {self.engines.tts.name}",
                    stage=Stage.SESSION,
                )
            return voice
        self.engines.tts.validate_voice(voice)
        return voice

    def _language_check(self, init: ev.StreamInit) -> LanguageCheck:
        """The stream's own choice, else the server's; a stream that asks for a check ASR cannot run is refused."""
        if init.language_check is None:
            return self.settings.asr_language_check
        if init.language_check != "off" and not self.engines.asr.detects_language:
            raise DubbingError(
                ErrorCode.INVALID_PAYLOAD,
                f"language_check '{init.language_check}' needs language detection, "
                f"which ASR ({self.engines.asr.name}) cannot do",
                stage=Stage.SESSION,
            )
        return init.language_check

    def mix(self, init: ev.StreamInit) -> MixOptions:
        """The stream's mix, else the server's; one this pod cannot make is refused here, not per fragment."""
        s = self.settings
        mode = init.mix or s.mix_default
        if mode == "background" and self.engines.extras.get("separation") is None:
            raise DubbingError(
                ErrorCode.UNSUPPORTED_MIX,
                "mix 'background' needs source separation, which this runtime does not have "
                "(SEPARATION_ENGINE=none); ask for 'voiceover' or 'dub', or use a pod with SEPARATION_ENGINE=spleeter "
                "or demucs",
                stage=Stage.SESSION,
                retryable=False,
            )
        duck_db = s.mix_duck_db if init.mix_duck_db is None else init.mix_duck_db
        fade_ms = s.mix_fade_ms if init.mix_fade_ms is None else init.mix_fade_ms
        return MixOptions(mode=mode, duck_db=duck_db, fade_ms=fade_ms)
