"""Per-stream state: lifecycle, admission, in-flight accounting, ordering and context.

Pure bookkeeping with no I/O and no Socket.IO: the transport layer asks the session whether a
fragment may be admitted, runs the pipeline, and hands results back; the session says what to
deliver, in which order. That keeps every rule here unit-testable without a server.
"""

from __future__ import annotations

import asyncio
import uuid
from collections import OrderedDict
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from livedub.runtime.engines.base import TranslationOptions, VoiceProfile
from livedub.runtime.errors import DubbingError, ErrorCode, Stage
from livedub.runtime.pipeline.language import LanguageCheck
from livedub.runtime.pipeline.mix import MixOptions
from livedub.runtime.protocol.events import AudioFormat, BackpressureSeverity
from livedub.runtime.session.backpressure import BackpressureTracker, Thresholds
from livedub.runtime.session.ordering import ReorderBuffer, Ticket

#: Delivered fragment ids remembered for duplicate detection; bounded so a day-long stream
#: does not grow memory (at 6 s fragments this is over an hour of history).
_REMEMBERED_IDS = 1024


class StreamState(StrEnum):
    ACTIVE = "active"
    PAUSED = "paused"
    ENDING = "ending"
    ENDED = "ended"


class Admission(StrEnum):
    QUEUED = "queued"
    DUPLICATE = "duplicate"


@dataclass(slots=True)
class StreamConfig:
    stream_id: str
    source_language: str
    target_language: str
    voice: VoiceProfile | None
    translation: TranslationOptions
    input_sample_rate: int
    input_channels: int
    input_format: AudioFormat
    output_format: AudioFormat | None
    output_sample_rate: int | None
    #: off / warn / refuse (pipeline/language.py): stream:init's choice, else the server's setting.
    language_check: LanguageCheck = "off"
    #: Per-fragment deadline from arrival (stream:init ``timeout_ms``), or None for no deadline.
    timeout_ms: int | None = None
    #: Programme vocabulary for ASR and translation (stream:init ``domain_hints``).
    domain_hints: tuple[str, ...] = ()
    #: The wire dialect the stream is answered in (protocol/dialects); opaque to the session.
    dialect: str = "guide"
    #: What the dub is laid over, and the voiceover's ducking (stream:init ``mix``, else MIX_DEFAULT).
    mix: MixOptions = field(default_factory=MixOptions)
    #: Timed caption cues with each fragment (stream:init ``captions``).
    captions: bool = False


@dataclass(slots=True)
class StreamStats:
    received: int = 0
    delivered: int = 0
    success: int = 0
    partial: int = 0
    failed: int = 0
    processing_ms_total: int = 0
    deadline_misses: int = 0

    _processed: int = 0

    @property
    def avg_processing_time_ms(self) -> float:
        return round(self.processing_ms_total / self._processed, 1) if self._processed else 0.0

    def count(self, status: str, processing_ms: int = 0) -> None:
        self.delivered += 1
        if processing_ms > 0:  # rejections (0 ms, never processed) do not dilute the average
            self.processing_ms_total += processing_ms
            self._processed += 1
        if status == "success":
            self.success += 1
        elif status == "partial":
            self.partial += 1
        else:
            self.failed += 1


@dataclass(slots=True)
class StreamSession:
    config: StreamConfig
    thresholds: Thresholds
    session_id: str = field(default_factory=lambda: f"sess-{uuid.uuid4().hex[:12]}")
    state: StreamState = StreamState.ACTIVE
    stats: StreamStats = field(default_factory=StreamStats)
    #: Previous fragment's transcript and translation: ASR prompt and MT context.
    previous_transcript: str = ""
    previous_translation: str = ""
    order: ReorderBuffer[Any] = field(default_factory=ReorderBuffer)
    inflight_ids: dict[str, Ticket] = field(default_factory=dict)  # fragment_id -> its place in order
    #: Serialises "complete + emit" so two finishing fragments cannot interleave their sends.
    delivery_lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    #: Set whenever nothing is in flight; ``stream:end`` waits on it.
    idle: asyncio.Event = field(default_factory=asyncio.Event)
    tasks: set[asyncio.Task[None]] = field(default_factory=set)
    #: The speaker's recent speech when the stream asked for the ``source`` voice (a SourceAudioBuffer).
    source_audio: Any = None
    #: This stream's speakers when it asked for ``speakers: "auto"`` (a pipeline SpeakerTracker).
    speakers: Any = None
    #: Where the voiceover ducking ended, for the next fragment (a pipeline DuckCarry), else None.
    duck_carry: Any = None
    _delivered_ids: OrderedDict[str, str] = field(default_factory=OrderedDict)  # id -> status
    backpressure: BackpressureTracker = field(init=False)

    def __post_init__(self) -> None:
        self.backpressure = BackpressureTracker(self.thresholds)
        self.idle.set()

    @property
    def stream_id(self) -> str:
        return self.config.stream_id

    @property
    def inflight(self) -> int:
        return len(self.inflight_ids)

    def is_duplicate(self, fragment_id: str) -> bool:
        """In flight, or already answered with anything but ``failed`` (a failed one may be retried)."""
        previous = self._delivered_ids.get(fragment_id)
        return fragment_id in self.inflight_ids or (previous is not None and previous != "failed")

    def admit(self, fragment_id: str, sequence: int) -> Admission:
        """Decide whether a fragment enters the pipeline. Raises DubbingError to reject it."""
        if self.state is StreamState.PAUSED:
            raise DubbingError(
                ErrorCode.STREAM_PAUSED, "stream is paused; send stream:resume first", stage=Stage.SESSION
            )
        if self.state in (StreamState.ENDING, StreamState.ENDED):
            raise DubbingError(
                ErrorCode.STREAM_ENDED, "stream has ended; send stream:init to start again", stage=Stage.SESSION
            )
        if fragment_id in self.inflight_ids:
            return Admission.DUPLICATE
        previous = self._delivered_ids.get(fragment_id)
        if previous is not None and previous != "failed":
            return Admission.DUPLICATE  # a failed fragment may be retried under the same id
        # Only a number being dubbed right now conflicts: one whose rejection is still waiting for
        # its turn to be delivered may be retried (a retryable rejection must be retryable).
        if any(ticket[0] == sequence for ticket in self.inflight_ids.values()):
            raise DubbingError(
                ErrorCode.INVALID_PAYLOAD,
                f"sequence_number {sequence} is already in flight under another fragment_id",
                stage=Stage.SESSION,
            )
        if self.backpressure.would_reject(self.inflight):
            raise DubbingError(
                ErrorCode.BACKPRESSURE_EXCEEDED,
                f"{self.inflight} fragments in flight (critical threshold {self.thresholds.critical}); retry later",
                stage=Stage.SESSION,
            )
        self.inflight_ids[fragment_id] = self.order.admit(sequence)
        self.stats.received += 1
        self.idle.clear()
        return Admission.QUEUED

    def complete(self, fragment_id: str, result: Any, status: str) -> list[Any]:
        """Record a finished fragment; return the results now deliverable, in sequence order."""
        ticket = self.inflight_ids.pop(fragment_id)
        self._delivered_ids[fragment_id] = status
        while len(self._delivered_ids) > _REMEMBERED_IDS:
            self._delivered_ids.popitem(last=False)
        ready = self.order.complete(ticket, result)
        if not self.inflight_ids:
            self.idle.set()
        return ready

    def rejected(self, sequence: int, result: Any) -> list[Any]:
        """Queue a rejection's result behind every lower (and earlier same) number; return what is deliverable."""
        return self.order.complete(self.order.admit(sequence), result)

    def queue_position(self, fragment_id: str) -> int:
        """Fragments of this stream that will be answered before this one."""
        ticket = self.inflight_ids.get(fragment_id)
        return self.order.ahead_of(ticket) if ticket is not None else 0

    def backpressure_change(self) -> BackpressureSeverity | None:
        return self.backpressure.update(self.inflight)

    def remember_context(self, transcript: str, translation: str) -> None:
        # An empty fragment (silence) keeps the older context: the sentence may continue after it.
        if transcript.strip():
            self.previous_transcript = transcript
            self.previous_translation = translation
