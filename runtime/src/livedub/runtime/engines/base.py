"""The four stage interfaces, and the values that flow between them.

One interface per stage, one module per backend (wyoming-faster-whisper and livekit plugins do the
same). Every method here is *synchronous* and may block for seconds: the pipeline always calls them
from a worker thread, never from the event loop. Backends load their models in ``__init__`` (or a
``load`` classmethod), once per process, so constructing one is the slow part and calling it is not.

Audio inside the runtime is always mono float32 in [-1, 1] with an explicit sample rate; the
protocol layer converts at the edges.
"""

from __future__ import annotations

import time
from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import NamedTuple

import numpy as np
import numpy.typing as npt

Samples = npt.NDArray[np.float32]

#: Sample rate every ASR backend receives (Whisper's native rate).
ASR_SAMPLE_RATE = 16_000


def base_language(code: str) -> str:
    """The ISO 639-1 part of a language code: "en-US" and "en_us" -> "en" (engines match on it)."""
    return code.replace("_", "-").split("-")[0].lower()


@dataclass(frozen=True, slots=True)
class Word:
    text: str
    start: float
    end: float
    probability: float = 1.0


@dataclass(frozen=True, slots=True)
class Transcript:
    """What ASR heard in one fragment. ``text`` is empty when there was no speech.

    ``text`` is always decoded in the language the engine was asked for (the stream's source
    language). ``language``/``language_probability`` are what the engine *detected* when asked to
    detect (``detect_language=True``) and could; otherwise the requested language with 1.0.
    """

    text: str
    language: str
    language_probability: float = 1.0
    words: tuple[Word, ...] = ()
    #: Seconds into the fragment where speech starts (VAD/segment timestamps): dubbed speech is
    #: placed there so pauses line up with the picture.
    speech_start: float | None = None
    #: Seconds into the fragment where the speech ends: with ``speech_start``, the slot a dub fits.
    speech_end: float | None = None

    @property
    def has_speech(self) -> bool:
        return bool(self.text.strip())


@dataclass(frozen=True, slots=True)
class VoiceProfile:
    """A target voice, as in ``config/voices.json``. ``reference_audio`` is for cloning engines."""

    name: str
    language: str
    gender: str | None = None
    reference_audio: Path | None = None
    #: Embedded engines pick a built-in voice by name; cloning engines ignore it.
    speaker: str | None = None


@dataclass(frozen=True, slots=True)
class LengthBudget:
    """How much translated text fits one fragment's slot, for engines that can be asked (the LLM).

    ``seconds`` is the slot; ``max_chars`` is what the target voice says in it at its natural speed
    (learned per engine and language by the pipeline's :class:`~livedub.runtime.pipeline.prefit.SpeakingRate`).
    """

    seconds: float
    max_chars: int


@dataclass(frozen=True, slots=True)
class TranslationOptions:
    """Per-stream translation settings (DeepL features; embedded engines ignore what they lack)."""

    formality: str | None = None
    glossary_id: str | None = None
    #: The programme's terms (stream:init ``domain_hints``): context for engines that take it.
    domain_hints: tuple[str, ...] = ()
    #: Per fragment, set by the pipeline: the slot the translation should fit. Engines that cannot
    #: be asked for a length (Apertium, DeepL) ignore it.
    budget: LengthBudget | None = None
    #: The stream's glossary (stream:init ``glossary``): (source term, fixed translation) pairs. The
    #: LLM gets them in its prompt and is checked; Apertium output keeps them by placeholders.
    glossary: tuple[tuple[str, str], ...] = ()
    #: Per call, set by the pipeline: the ``time.monotonic()`` at which the stage stops waiting. The
    #: worker thread cannot be stopped, so an engine skips optional extra work (retries, rewrites)
    #: past it: abandoned work would hold a one-model engine while the next fragment waits.
    deadline: float | None = None

    def in_time(self) -> bool:
        return self.deadline is None or time.monotonic() < self.deadline


@dataclass(frozen=True, slots=True)
class Speech:
    audio: Samples
    sample_rate: int

    @property
    def duration_s(self) -> float:
        return len(self.audio) / self.sample_rate if self.sample_rate else 0.0


class AsrRequest(NamedTuple):
    """One fragment for :meth:`SpeechRecognizer.transcribe_many`; a plain 3-tuple also works."""

    audio: Samples
    language: str
    prompt: str | None = None
    #: Also report the spoken language (the stream's language check asks for it per stream).
    detect_language: bool = False
    #: Vocabulary of the programme (stream:init ``domain_hints``), for engines that can be primed.
    hints: str | None = None
    #: Also give word timestamps (captions ask for them); engines without them return none.
    words: bool = False


class SpeechRecognizer(ABC):
    """ASR. ``audio`` is mono float32 at :data:`ASR_SAMPLE_RATE`."""

    name: str = "asr"

    @property
    @abstractmethod
    def languages(self) -> frozenset[str]:
        """ISO 639-1 codes this engine can transcribe."""

    @property
    def detects_language(self) -> bool:
        """Whether ``detect_language=True`` yields a real detection (else it is ignored)."""
        return False

    @abstractmethod
    def transcribe(
        self, audio: Samples, *, language: str, prompt: str | None = None, detect_language: bool = False
    ) -> Transcript:
        """Transcribe one fragment. ``prompt`` is the previous fragment's transcript (context)."""

    def transcribe_many(self, requests: Sequence[AsrRequest | tuple[Samples, str, str | None]]) -> list[Transcript]:
        """Transcribe several fragments. Batched backends override; engines that cannot be primed ignore ``hints``."""
        return [
            self.transcribe(r.audio, language=r.language, prompt=r.prompt, detect_language=r.detect_language)
            for r in (AsrRequest(*request) for request in requests)
        ]


class Translator(ABC):
    name: str = "mt"

    @abstractmethod
    def supports(self, source: str, target: str) -> bool:
        """Whether this engine can translate ``source`` → ``target`` (ISO 639-1 codes)."""

    @property
    @abstractmethod
    def pairs(self) -> frozenset[tuple[str, str]]:
        """Every (source, target) pair offered, for ``stream:ready`` and docs."""

    @abstractmethod
    def translate(
        self,
        text: str,
        *,
        source: str,
        target: str,
        context: str | None = None,
        options: TranslationOptions | None = None,
    ) -> str:
        """Translate ``text``. ``context`` (previous sentences) informs but is not translated."""

    def shorten(
        self,
        translation: str,
        *,
        target: str,
        budget: LengthBudget,
        source_text: str = "",
        keep: Sequence[str] = (),
        firm: bool = False,
    ) -> str | None:
        """A shorter rewrite of ``translation`` that fits ``budget``, or None where the engine cannot.

        The pipeline asks when the line would leave the natural tempo band (pipeline/slotfit.py,
        pipeline/tempo.py); ``keep``: glossary terms the rewrite must keep; ``firm``: the second
        ask, after a plain request did not shorten enough. Only an instruction-following engine
        (the LLM) can; the default cannot.
        """
        return None

    def alternative(
        self, text: str, *, source: str, target: str, options: TranslationOptions | None = None
    ) -> str | None:
        """A second engine's translation of ``text`` (the LLM's rule-based fallback), or None.

        The slot fit's last resort (pipeline/slotfit.py): a literal line that happens to fit.
        """
        return None


class Synthesizer(ABC):
    name: str = "tts"
    #: Calls that can usefully run at once. Every engine here synthesises one call at a time (one
    #: model, one lock), so the pipeline queues the rest in front of the stage, outside its timeout.
    max_concurrency: int = 1

    @property
    @abstractmethod
    def languages(self) -> frozenset[str]: ...

    @abstractmethod
    def synthesize(
        self,
        text: str,
        *,
        language: str,
        voice: VoiceProfile | None = None,
        speed: float = 1.0,
    ) -> Speech:
        """Speak ``text``. ``speed`` > 1 speaks faster (engines that support it pre-fit length)."""

    def validate_voice(self, voice: VoiceProfile) -> None:  # noqa: B027 - optional hook
        """Raise :class:`~livedub.runtime.errors.EngineError` if ``voice`` cannot be used."""


class TimeStretcher(ABC):
    name: str = "stretch"

    @abstractmethod
    def stretch(self, audio: Samples, sample_rate: int, rate: float) -> Samples:
        """Change tempo by ``rate`` keeping pitch: ``rate`` 2.0 halves the duration."""


@dataclass(slots=True)
class Engines:
    """The engine set one runtime process serves with, built once at start-up."""

    asr: SpeechRecognizer
    translator: Translator
    tts: Synthesizer
    stretcher: TimeStretcher
    #: Extra engines by stage, e.g. a fallback translator.
    extras: dict[str, object] = field(default_factory=dict)

    def describe(self, target_language: str | None = None) -> dict[str, str]:
        """Engine names; with a target language, the TTS engine that will really speak it.

        A stream's ``stream:ready`` names the voice its listeners get (Kokoro, not "kokoro+espeak-ng"),
        so a degraded install (Kokoro missing, espeak-ng speaking) is visible to the worker.
        """
        tts = self.tts
        engine_for = getattr(tts, "engine_for", None)
        if target_language is not None and callable(engine_for):
            tts = engine_for(target_language)
        return {
            "asr": self.asr.name,
            "translation": self.translator.name,
            "tts": tts.name,
            "duration_matching": self.stretcher.name,
        }
