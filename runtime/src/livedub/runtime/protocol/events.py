"""Wire payloads, exactly as the quick-start guide's API reference (section 10), then extensions.

Every field the guide names keeps its name, type and meaning. Extensions are optional fields and new
events only, so a client written against the guide keeps working. Inbound models ignore unknown
fields (forward compatibility: a newer worker may send more); outbound models are built by the
server and serialised with ``exclude_none`` so optional extensions vanish when unused.
"""

from __future__ import annotations

import math
import time
from enum import StrEnum
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, ValidationError, field_validator

from livedub.runtime.errors import DubbingError, ErrorCode, Stage

#: Ids are echoed into logs, metrics-free artifact paths and JSON; keep them short and printable.
Identifier = Annotated[str, Field(min_length=1, max_length=128)]
LanguageCode = Annotated[str, Field(min_length=2, max_length=8, pattern=r"^[A-Za-z]{2,3}([-_][A-Za-z0-9]{2,4})?$")]


class AudioFormat(StrEnum):
    """Audio encodings accepted in ``fragment:data`` (and produced in ``fragment:processed``)."""

    PCM_S16LE = "pcm_s16le"
    WAV = "wav"
    OGG = "ogg"  # Ogg/Opus (or Vorbis on input)
    OPUS = "opus"  # alias of ogg: Opus in an Ogg container
    M4A = "m4a"  # AAC in MP4, what the media worker sends
    AAC = "aac"  # ADTS AAC
    MP3 = "mp3"
    FLAC = "flac"


class _Inbound(BaseModel):
    model_config = ConfigDict(extra="ignore", str_strip_whitespace=True, frozen=True)


class _Outbound(BaseModel):
    model_config = ConfigDict(extra="forbid")

    def wire(self) -> dict[str, Any]:
        return self.model_dump(mode="json", exclude_none=True)


# ---------------------------------------------------------------------------------------------
# Client -> server
# ---------------------------------------------------------------------------------------------


#: Bounds of a stream's glossary: it goes into every LLM prompt, so it stays small.
GLOSSARY_MAX_ENTRIES = 64
GLOSSARY_TERM_MAX_CHARS = 64


class GlossaryEntry(_Inbound):
    """One term that must translate one way: ``source`` (as spoken) -> ``target`` (as written)."""

    source: str = Field(min_length=1, max_length=GLOSSARY_TERM_MAX_CHARS)
    target: str = Field(min_length=1, max_length=GLOSSARY_TERM_MAX_CHARS)

    @field_validator("source", "target")
    @classmethod
    def _has_words(cls, value: str) -> str:
        if not any(ch.isalnum() for ch in value):
            raise ValueError("a glossary term needs a letter or digit")
        return value


Glossary = Annotated[tuple[GlossaryEntry, ...], Field(max_length=GLOSSARY_MAX_ENTRIES)]


def check_glossary(entries: tuple[GlossaryEntry, ...]) -> tuple[GlossaryEntry, ...]:
    """One translation per source term: two for the same term (any case) is a contradiction."""
    seen: dict[str, str] = {}
    for entry in entries:
        key = entry.source.casefold()
        if key in seen and seen[key] != entry.target:
            raise ValueError(f"glossary term {entry.source!r} has two translations")
        seen[key] = entry.target
    return entries


class StreamInit(_Inbound):
    source_language: LanguageCode
    target_language: LanguageCode
    voice_profile: str | None = Field(None, max_length=128)
    chunk_duration_ms: int = Field(6000, gt=0, le=600_000)
    sample_rate_hz: int = Field(16000, ge=8000, le=192_000)
    channels: int = Field(1, ge=1, le=8)
    format: AudioFormat = AudioFormat.PCM_S16LE
    # --- extensions ---
    #: Several streams may share one connection; default is the connection's X-Stream-ID.
    stream_id: Identifier | None = None
    #: Encoding and rate of dubbed audio; default: whatever each fragment arrived in.
    output_format: AudioFormat | None = None
    output_sample_rate_hz: int | None = Field(None, ge=8000, le=192_000)
    #: DeepL options (ignored by engines that lack them).
    formality: Literal["default", "more", "less", "prefer_more", "prefer_less"] | None = None
    glossary_id: str | None = Field(None, max_length=128)
    #: This stream's language check (off / warn / refuse); default: the server's ASR_LANGUAGE_CHECK.
    language_check: Literal["off", "warn", "refuse"] | None = None
    #: Deadline per fragment, from its arrival: a fragment that cannot be dubbed in time is answered
    #: ``failed`` / ``TIMEOUT`` (retryable) before it, so the worker can play the original instead.
    timeout_ms: int | None = Field(None, ge=1000, le=600_000)
    #: Terms of the programme (names, jargon): a vocabulary for ASR and context for translation.
    domain_hints: tuple[Annotated[str, Field(min_length=1, max_length=64)], ...] = Field((), max_length=32)
    #: Terms that must translate one way (``[{"source": "Champions League", "target": "Liga de
    #: Campeones"}]``): in the LLM's prompt and checked in its answer; kept by placeholders through
    #: Apertium. At most 64 entries of 64 characters; a term given two translations is refused.
    glossary: Glossary = ()
    #: The client's own in-flight window; the server advertises the smaller of it and MAX_INFLIGHT.
    max_inflight: int | None = Field(None, ge=1, le=64)
    #: Which wire dialect to answer in (default: the shape of this payload; protocol/dialects).
    dialect: Literal["guide", "worker"] | None = None
    #: What the dub is laid over (pipeline/mix.py): dub (silence), voiceover (the original ducked under
    #: the dub's speech), background (the original's non-speech part); default: the server's MIX_DEFAULT.
    mix: Literal["dub", "voiceover", "background"] | None = None
    #: voiceover only: ducking depth (dB) and fade length; default: MIX_DUCK_DB / MIX_FADE_MS.
    mix_duck_db: float | None = Field(None, ge=0, le=40)
    mix_fade_ms: int | None = Field(None, ge=10, le=2000)
    #: Speaker tracking: "auto" labels each fragment's speaker and gives each a voice of its own;
    #: default: the server's SPEAKERS (off, so the default path runs none of it).
    speakers: Literal["off", "auto"] | None = None
    #: Timed caption cues in both languages with each fragment; default: the server's CAPTIONS.
    captions: bool | None = None

    @field_validator("source_language", "target_language")
    @classmethod
    def _lower(cls, value: str) -> str:
        return value.lower().replace("_", "-")

    @field_validator("glossary")
    @classmethod
    def _one_translation_each(cls, value: tuple[GlossaryEntry, ...]) -> tuple[GlossaryEntry, ...]:
        return check_glossary(value)


class FragmentData(_Inbound):
    fragment_id: Identifier
    stream_id: Identifier | None = None
    sequence_number: int = Field(ge=0, le=2**53)
    timestamp: float = 0
    #: base64 text (the guide) or raw bytes (a Socket.IO binary attachment: 33 % smaller).
    audio: str | bytes
    sample_rate: int = Field(16000, ge=8000, le=192_000)
    channels: int = Field(1, ge=1, le=8)
    format: AudioFormat = AudioFormat.PCM_S16LE
    duration_ms: float | None = Field(None, gt=0)

    @field_validator("timestamp", "duration_ms")
    @classmethod
    def _finite(cls, value: float | None) -> float | None:
        if value is not None and not math.isfinite(value):
            raise ValueError("must be a finite number")
        return value


class StreamControl(_Inbound):
    """``stream:pause`` / ``stream:resume`` / ``stream:end``: empty in the guide; ``stream_id`` optional."""

    stream_id: Identifier | None = None


# ---------------------------------------------------------------------------------------------
# Server -> client
# ---------------------------------------------------------------------------------------------


class ErrorInfo(_Outbound):
    stage: str
    code: str
    message: str
    retryable: bool

    @classmethod
    def from_error(cls, error: DubbingError, default_stage: Stage = Stage.PROTOCOL) -> ErrorInfo:
        return cls(
            stage=str(error.stage or default_stage),
            code=str(error.code),
            message=error.message,
            retryable=error.retryable,
        )


class StreamReady(_Outbound):
    session_id: str
    max_inflight: int
    capabilities: list[str]
    # --- extensions ---
    stream_id: str | None = None
    engines: dict[str, str] | None = None
    source_language: str | None = None
    target_language: str | None = None
    voice_profile: str | None = None
    #: The stream's effective mix (its own choice or MIX_DEFAULT).
    mix: str | None = None


class FragmentAck(_Outbound):
    fragment_id: str
    status: Literal["queued", "rejected", "duplicate"]
    timestamp: int = Field(default_factory=lambda: int(time.time()))
    # --- extensions ---
    stream_id: str | None = None
    sequence_number: int | None = None
    error: ErrorInfo | None = None
    #: Fragments of this stream admitted before this one and not yet answered.
    queue_position: int | None = None


class DurationMetadata(_Outbound):
    original_duration_ms: int
    dubbed_duration_ms: int
    duration_variance_percent: float
    speed_ratio: float


class StageTimings(_Outbound):
    asr_ms: int = 0
    translation_ms: int = 0
    tts_ms: int = 0
    # --- extensions ---
    duration_match_ms: int | None = None
    #: The mix stage (voiceover / background / loudness), when the stream's mix runs one.
    mix_ms: int | None = None
    decode_ms: int | None = None
    encode_ms: int | None = None
    queue_ms: int | None = None
    speaker_ms: int | None = None
    captions_ms: int | None = None


class CaptionCue(_Outbound):
    """One timed cue, milliseconds from the start of its fragment."""

    start_ms: int
    end_ms: int
    text: str
    speaker: str | None = None


class Captions(_Outbound):
    """Extension of ``fragment:processed`` when the stream asked for ``captions``."""

    source_language: str
    target_language: str
    source: list[CaptionCue]
    target: list[CaptionCue]
    #: How cue times were derived: "words" = the ASR's word timestamps; "proportional" = the text
    #: spread over the audio's voiced spans by characters (TTS engines give no word timings; an ASR
    #: engine without word timestamps falls back to it for the source).
    source_timing: Literal["words", "proportional"] = "words"
    target_timing: Literal["proportional"] = "proportional"


class FragmentProcessed(_Outbound):
    fragment_id: str
    status: Literal["success", "partial", "failed"]
    dubbed_audio: str | bytes | None = None
    transcript: str | None = None
    translated_text: str | None = None
    metadata: DurationMetadata | None = None
    processing_time_ms: int | None = None
    stage_timings: StageTimings | None = None
    error: ErrorInfo | None = None
    # --- extensions ---
    stream_id: str | None = None
    sequence_number: int | None = None
    format: str | None = None
    sample_rate: int | None = None
    channels: int | None = None
    #: The fragment's speaker label ("S1", "S2", ...) when the stream asked for ``speakers``.
    speaker: str | None = None
    #: The engine's built-in voice that speaker is dubbed with (stable per speaker).
    speaker_voice: str | None = None
    captions: Captions | None = None
    #: How long the fragment's input lasts (ms) where it was decoded, failed results included; never
    #: sent: server-side observers (the caption feed's clock) need it where ``metadata`` is absent.
    _input_duration_ms: int | None = PrivateAttr(None)

    @property
    def input_duration_ms(self) -> int | None:
        return self.metadata.original_duration_ms if self.metadata is not None else self._input_duration_ms

    def set_input_duration(self, duration_ms: int) -> None:
        self._input_duration_ms = duration_ms

    def wire(self) -> dict[str, Any]:
        # ``mode="json"`` cannot carry raw bytes; keep binary attachments binary.
        if not isinstance(self.dubbed_audio, bytes):
            return super().wire()
        data = self.model_dump(mode="json", exclude_none=True, exclude={"dubbed_audio"})
        data["dubbed_audio"] = self.dubbed_audio
        return data


class BackpressureSeverity(StrEnum):
    NONE = "none"
    LOW = "low"
    MEDIUM = "medium"
    HIGH = "high"
    CRITICAL = "critical"


class BackpressureAction(StrEnum):
    RESUME = "resume"  # back under every threshold
    MONITOR = "monitor"  # at the advertised window: fine, but no more
    SLOW_DOWN = "slow_down"
    PAUSE = "pause"
    REJECT = "reject"  # new fragments are being rejected (retryable)


class Backpressure(_Outbound):
    stream_id: str
    severity: BackpressureSeverity
    action: BackpressureAction
    current_inflight: int
    max_inflight: int
    threshold_exceeded: str | None = None


class ErrorEvent(_Outbound):
    """The ``error`` event: a failure not tied to a fragment result (bad payload, unknown stream)."""

    code: str
    message: str
    retryable: bool
    stage: str = str(Stage.PROTOCOL)
    event: str | None = None
    stream_id: str | None = None
    fragment_id: str | None = None
    #: With a retryable refusal (``POD_FULL``): wait this long, jittered, before reconnecting.
    retry_after_ms: int | None = None

    @classmethod
    def from_error(
        cls,
        error: DubbingError,
        *,
        event: str | None = None,
        stream_id: str | None = None,
        fragment_id: str | None = None,
    ) -> ErrorEvent:
        return cls(
            code=str(error.code),
            message=error.message,
            retryable=error.retryable,
            stage=str(error.stage or Stage.PROTOCOL),
            event=event,
            stream_id=stream_id,
            fragment_id=fragment_id,
            retry_after_ms=error.retry_after_ms,
        )


class StreamComplete(_Outbound):
    """Extension: confirms ``stream:end`` after every in-flight fragment was delivered."""

    stream_id: str
    session_id: str
    fragments_received: int
    fragments_delivered: int
    success: int
    partial: int
    failed: int
    avg_processing_time_ms: float | None = None
    #: Fragments answered TIMEOUT because the stream's ``timeout_ms`` deadline came first.
    deadline_misses: int | None = None


class StreamState(_Outbound):
    """Extension: the reply (Socket.IO ack) to pause/resume, also emitted as ``stream:state``."""

    stream_id: str
    state: Literal["active", "paused", "ending", "ended"]
    inflight: int


def invalid_payload(event: str, exc: ValidationError) -> DubbingError:
    """A pydantic ValidationError on an inbound event, as a wire error naming the bad fields."""
    problems = [
        f"{'.'.join(str(p) for p in err['loc']) or 'payload'}: {err['msg']}"
        for err in exc.errors(include_url=False)[:5]
    ]
    return DubbingError(
        ErrorCode.INVALID_PAYLOAD, f"invalid {event} payload: {'; '.join(problems)}"[:500], stage=Stage.PROTOCOL
    )
