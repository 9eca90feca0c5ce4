"""Typed errors: every failure a client can see carries a stage, a code and ``retryable``.

Engines and the pipeline raise :class:`DubbingError` (or a subclass); the Socket.IO layer turns it
into the wire's ``error`` object in one place (``protocol.events.ErrorInfo.from_error``). Codes are a
closed set so clients can switch on them; the quick-start guide names TIMEOUT, RATE_LIMIT_EXCEEDED,
INVALID_VOICE_PROFILE and DURATION_MISMATCH_EXCEEDED, the rest extend it compatibly.

Retry semantics follow the usual HTTP reading (livekit-agents does the same): a client may retry
what failed because of load or a transient outage, never what failed because of its own input.
"""

from __future__ import annotations

from enum import StrEnum


class Stage(StrEnum):
    """Where a failure happened. ``protocol`` and ``session`` are failures before any engine ran."""

    PROTOCOL = "protocol"
    SESSION = "session"
    DECODE = "decode"
    ASR = "asr"
    TRANSLATION = "translation"
    TTS = "tts"
    DURATION_MATCH = "duration_match"
    MIX = "mix"
    ENCODE = "encode"


class ErrorCode(StrEnum):
    # The guide's codes.
    TIMEOUT = "TIMEOUT"
    RATE_LIMIT_EXCEEDED = "RATE_LIMIT_EXCEEDED"
    INVALID_VOICE_PROFILE = "INVALID_VOICE_PROFILE"
    DURATION_MISMATCH_EXCEEDED = "DURATION_MISMATCH_EXCEEDED"
    # Compatible extensions.
    INVALID_PAYLOAD = "INVALID_PAYLOAD"
    INVALID_AUDIO = "INVALID_AUDIO"
    STREAM_NOT_INITIALIZED = "STREAM_NOT_INITIALIZED"
    STREAM_PAUSED = "STREAM_PAUSED"
    STREAM_ENDED = "STREAM_ENDED"
    UNSUPPORTED_LANGUAGE = "UNSUPPORTED_LANGUAGE"
    #: The fragment's speech is confidently in another language than the stream's source (language check).
    LANGUAGE_MISMATCH = "LANGUAGE_MISMATCH"
    #: The stream asked for a mix this pod cannot make (``background`` without a separation engine).
    UNSUPPORTED_MIX = "UNSUPPORTED_MIX"
    BACKPRESSURE_EXCEEDED = "BACKPRESSURE_EXCEEDED"
    DUPLICATE_FRAGMENT = "DUPLICATE_FRAGMENT"
    AUTH_FAILED = "AUTH_FAILED"
    LIMIT_EXCEEDED = "LIMIT_EXCEEDED"
    QUOTA_EXCEEDED = "QUOTA_EXCEEDED"
    SERVICE_UNAVAILABLE = "SERVICE_UNAVAILABLE"
    SHUTTING_DOWN = "SHUTTING_DOWN"
    #: This pod serves its MAX_POD_STREAMS already (or is marked for removal): reconnect after
    #: ``retry_after_ms`` and the Service routes the new connection to a pod with room.
    POD_FULL = "POD_FULL"
    #: This pod is leaving the pool: the stream reconnects (``retry_after_ms``), re-inits with the same
    #: stream_id on the new connection and resends the fragments refused with this code (server/move.py).
    STREAM_MOVE = "STREAM_MOVE"
    INTERNAL = "INTERNAL"


#: Codes a client may retry by default. A raiser can override per instance.
RETRYABLE_CODES: frozenset[ErrorCode] = frozenset(
    {
        ErrorCode.TIMEOUT,
        ErrorCode.RATE_LIMIT_EXCEEDED,
        ErrorCode.BACKPRESSURE_EXCEEDED,
        ErrorCode.SERVICE_UNAVAILABLE,
        ErrorCode.SHUTTING_DOWN,
        ErrorCode.STREAM_PAUSED,
        ErrorCode.POD_FULL,
        ErrorCode.STREAM_MOVE,
    }
)


class DubbingError(Exception):
    """A failure with a wire-visible code. ``stage`` may be filled in by the pipeline."""

    def __init__(
        self,
        code: ErrorCode,
        message: str,
        *,
        stage: Stage | None = None,
        retryable: bool | None = None,
        retry_after_ms: int | None = None,
    ) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.stage = stage
        #: How long a client should wait before retrying, when the server knows.
        self.retry_after_ms = retry_after_ms
        self.retryable = code in RETRYABLE_CODES if retryable is None else retryable

    def at(self, stage: Stage) -> DubbingError:
        """Return self with ``stage`` set unless an inner layer already set it."""
        if self.stage is None:
            self.stage = stage
        return self

    def __repr__(self) -> str:
        return f"DubbingError({self.code}, {self.message!r}, stage={self.stage}, retryable={self.retryable})"


class EngineError(DubbingError):
    """Raised by an engine backend; the pipeline stamps the stage it was running."""


class ModelLoadError(RuntimeError):
    """A model or engine could not be loaded at start-up: the process must not report ready."""
