"""The media-service worker's dialect: nested ``config`` / ``audio`` objects, object-shaped results.

What that worker sends and reads (it cannot be changed; a deployment only sets its URL):

* ``stream:init`` ``{stream_id, worker_id, config: {source_language, target_language, voice_profile,
  format, sample_rate_hz, channels, chunk_duration_ms, domain_hints?, glossary?}, max_inflight?,
  timeout_ms?}`` (``glossary``: our extension, the same entries as the guide dialect's);
  without ``stream:ready`` within 10 s it gives up. A deployment that can configure it may add the
  guide's optional ``mix``, ``mix_duck_db``, ``mix_fade_ms``, ``speakers``, ``captions`` to ``config``.
* ``fragment:data`` ``{fragment_id, stream_id, sequence_number, timestamp, audio: {format,
  sample_rate_hz, channels, duration_ms, data_base64}, metadata: {pts_ns}}``. Its bytes are raw ADTS
  AAC frames labelled ``m4a``.
* It demuxes ``dubbed_audio.data_base64`` as MP4/M4A with an AAC track at the stream's rate and
  channel count, plays the original for a ``failed`` result, and drops a result that arrives more
  than ``timeout_ms`` after it sent the fragment.
* ``backpressure`` actions are ``none`` / ``slow_down`` / ``pause`` (only ``none`` resumes it),
  severities ``low`` / ``medium`` / ``high``.
* ``stream:complete`` carries ``total_fragments``, ``success_count``, ``failed_count``,
  ``avg_processing_time_ms``.

This module maps those shapes onto the typed events and back; nothing else knows them.
"""

from __future__ import annotations

import base64
import binascii
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from livedub.runtime.protocol import events as ev
from livedub.runtime.protocol.dialects.base import Dialect, Outbound
from livedub.runtime.protocol.dialects.guide import EVENTS

#: The worker only knows three actions; ``pause`` holds it until a ``none`` arrives.
_ACTIONS = {
    ev.BackpressureAction.RESUME: "none",
    ev.BackpressureAction.MONITOR: "none",
    ev.BackpressureAction.SLOW_DOWN: "slow_down",
    ev.BackpressureAction.PAUSE: "pause",
    ev.BackpressureAction.REJECT: "pause",
}
_SEVERITIES = {
    ev.BackpressureSeverity.NONE: "low",
    ev.BackpressureSeverity.LOW: "low",
    ev.BackpressureSeverity.MEDIUM: "medium",
    ev.BackpressureSeverity.HIGH: "high",
    ev.BackpressureSeverity.CRITICAL: "high",
}
#: The worker drops any result later than this after sending, whether or not its init says so: a
#: stream that declares no ``timeout_ms`` still gets this deadline.
WORKER_DEADLINE_MS = 8000
#: How long a slowed-down worker should wait between fragments: a tenth of a 6 s segment lets the
#: pipeline catch up within a few segments without starving the stream.
SLOW_DOWN_DELAY_MS = 600


class _In(BaseModel):
    model_config = ConfigDict(extra="ignore", str_strip_whitespace=True, frozen=True)


class WorkerConfig(_In):
    source_language: ev.LanguageCode
    target_language: ev.LanguageCode
    voice_profile: str | None = Field("default", max_length=128)
    format: ev.AudioFormat = ev.AudioFormat.M4A
    sample_rate_hz: int = Field(48000, ge=8000, le=192_000)
    channels: int = Field(2, ge=1, le=8)
    chunk_duration_ms: int = Field(6000, gt=0, le=600_000)
    domain_hints: tuple[Annotated[str, Field(min_length=1, max_length=64)], ...] = Field((), max_length=32)
    # Extensions the worker may set where its stream config lives (the same meaning as in the guide's).
    mix: Literal["dub", "voiceover", "background"] | None = None
    mix_duck_db: float | None = Field(None, ge=0, le=40)
    mix_fade_ms: int | None = Field(None, ge=10, le=2000)
    #: Extensions, as in the guide dialect's stream:init (optional; the worker itself sends neither).
    speakers: Literal["off", "auto"] | None = None
    captions: bool | None = None
    glossary: ev.Glossary = ()

    @field_validator("glossary")
    @classmethod
    def _one_translation_each(cls, value: tuple[ev.GlossaryEntry, ...]) -> tuple[ev.GlossaryEntry, ...]:
        return ev.check_glossary(value)


class WorkerStreamInit(_In):
    stream_id: ev.Identifier
    worker_id: str | None = Field(None, max_length=128)
    config: WorkerConfig
    max_inflight: int | None = Field(None, ge=1, le=64)
    timeout_ms: int | None = Field(None, ge=1000, le=600_000)


class WorkerAudio(_In):
    format: ev.AudioFormat = ev.AudioFormat.M4A
    sample_rate_hz: int = Field(48000, ge=8000, le=192_000)
    channels: int = Field(2, ge=1, le=8)
    duration_ms: float | None = Field(None, gt=0)
    data_base64: str | bytes


class WorkerFragment(_In):
    fragment_id: ev.Identifier
    stream_id: ev.Identifier | None = None
    sequence_number: int = Field(ge=0, le=2**53)
    timestamp: float = 0
    audio: WorkerAudio


def _is_adts(data: str | bytes) -> bool:
    """Raw ADTS starts every frame with a 12-bit sync word; an MP4 starts with a box size + ``ftyp``."""
    try:
        head = data[:3] if isinstance(data, bytes) else base64.b64decode(data[:4], validate=True)
    except (binascii.Error, ValueError):
        return False
    return len(head) >= 2 and head[0] == 0xFF and head[1] & 0xF0 == 0xF0


class WorkerDialect(Dialect):
    name = "worker"

    def recognises(self, payload: dict[str, Any]) -> bool:
        return isinstance(payload.get("config"), dict) or isinstance(payload.get("audio"), dict)

    def stream_init(self, payload: Any) -> ev.StreamInit:
        init = WorkerStreamInit.model_validate(payload if payload is not None else {})
        c = init.config
        return ev.StreamInit(
            stream_id=init.stream_id,
            source_language=c.source_language,
            target_language=c.target_language,
            # "default": the engine's own voice for the target language.
            voice_profile=None if c.voice_profile in (None, "", "default") else c.voice_profile,
            chunk_duration_ms=c.chunk_duration_ms,
            sample_rate_hz=c.sample_rate_hz,
            channels=c.channels,
            format=c.format,
            # The worker demuxes MP4/AAC at the stream's rate, whatever a fragment arrived in.
            output_format=ev.AudioFormat.M4A,
            output_sample_rate_hz=c.sample_rate_hz,
            glossary_id=None,
            domain_hints=c.domain_hints,
            glossary=c.glossary,
            timeout_ms=init.timeout_ms or WORKER_DEADLINE_MS,
            max_inflight=init.max_inflight,
            dialect="worker",
            mix=c.mix,
            mix_duck_db=c.mix_duck_db,
            mix_fade_ms=c.mix_fade_ms,
            speakers=c.speakers,
            captions=c.captions,
        )

    def fragment(self, payload: Any) -> ev.FragmentData:
        fragment = WorkerFragment.model_validate(payload)
        audio = fragment.audio
        fmt = audio.format
        if fmt is ev.AudioFormat.M4A and _is_adts(audio.data_base64):
            fmt = ev.AudioFormat.AAC  # what the worker really sends under the "m4a" label
        return ev.FragmentData(
            fragment_id=fragment.fragment_id,
            stream_id=fragment.stream_id,
            sequence_number=fragment.sequence_number,
            timestamp=fragment.timestamp,
            audio=audio.data_base64,
            sample_rate=audio.sample_rate_hz,
            channels=audio.channels,
            format=fmt,
            duration_ms=audio.duration_ms,
        )

    def encode(self, message: Outbound) -> tuple[str, dict[str, Any]]:
        event = EVENTS[type(message)]
        if isinstance(message, ev.FragmentProcessed):
            return event, _processed(message)
        if isinstance(message, ev.Backpressure):
            return event, _backpressure(message)
        if isinstance(message, ev.StreamComplete):
            return event, _complete(message)
        payload = message.wire()
        if isinstance(message, ev.FragmentAck):
            # The worker logs these three; the ids let it match the ack even for a rejection.
            payload.setdefault("stream_id", None)
            payload.setdefault("sequence_number", None)
            payload.setdefault("queue_position", 0)
        return event, payload


def _processed(result: ev.FragmentProcessed) -> dict[str, Any]:
    payload = result.model_dump(mode="json", exclude_none=True, exclude={"dubbed_audio", "format", "sample_rate"})
    # Always present, also on a rejection built from a payload that failed validation (then null).
    payload["stream_id"] = result.stream_id
    payload["sequence_number"] = result.sequence_number
    payload["processing_time_ms"] = result.processing_time_ms or 0
    payload["dubbed_audio"] = None  # present on a failed result too: the worker then plays the original
    if result.dubbed_audio is not None:
        data = result.dubbed_audio
        duration_ms = result.metadata.dubbed_duration_ms if result.metadata else None
        payload["dubbed_audio"] = {
            "format": result.format,
            "sample_rate_hz": result.sample_rate,
            "channels": result.channels,
            "duration_ms": duration_ms,
            "data_base64": base64.b64encode(data).decode() if isinstance(data, bytes) else data,
        }
    return payload


def _backpressure(event: ev.Backpressure) -> dict[str, Any]:
    action = _ACTIONS[event.action]
    payload: dict[str, Any] = {
        "stream_id": event.stream_id,
        "action": action,
        "severity": _SEVERITIES[event.severity],
        "current_inflight": event.current_inflight,
        "max_inflight": event.max_inflight,
    }
    if action == "slow_down":
        payload["recommended_delay_ms"] = SLOW_DOWN_DELAY_MS
    return payload


def _complete(done: ev.StreamComplete) -> dict[str, Any]:
    payload = done.wire()
    payload.update(
        # Every fragment answered, rejections included, so the three counts add up.
        total_fragments=done.fragments_delivered,
        # A partial dub is still a dub the worker plays; only failed ones fall back to the original.
        success_count=done.success + done.partial,
        failed_count=done.failed,
        avg_processing_time_ms=done.avg_processing_time_ms or 0.0,
    )
    return payload
