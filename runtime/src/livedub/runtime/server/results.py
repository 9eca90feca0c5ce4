"""Turn a pipeline outcome (or a failure) into the typed ``fragment:processed`` result.

Encodes the dubbed audio in the stream's output format, grades it, counts it in the metrics and
writes artifacts; what the result looks like on the wire is the dialect's business.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import logging
import time
from concurrent.futures import Executor
from dataclasses import dataclass
from typing import Any

from livedub.runtime.artifacts import ArtifactWriter
from livedub.runtime.audio.codec import DecodedAudio, encode_audio, resample
from livedub.runtime.config import Settings
from livedub.runtime.errors import DubbingError, ErrorCode, Stage
from livedub.runtime.metrics import Metrics
from livedub.runtime.pipeline.captions import Cue, FragmentCaptions
from livedub.runtime.pipeline.pipeline import FragmentOutcome
from livedub.runtime.protocol import events as ev
from livedub.runtime.session.session import StreamConfig, StreamSession

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Attempt:
    """One fragment's run: what came in, what the pipeline made of it, and when it started."""

    session: StreamSession
    fragment: ev.FragmentData
    decoded: DecodedAudio | None
    outcome: FragmentOutcome | None
    error: DubbingError | None
    started: float
    queue_ms: int


class ResultBuilder:
    def __init__(self, settings: Settings, metrics: Metrics, executor: Executor) -> None:
        self.settings = settings
        self.metrics = metrics
        self.executor = executor
        self.artifacts = ArtifactWriter(settings.artifacts_dir) if settings.artifacts_enabled else None

    async def build(self, attempt: Attempt) -> ev.FragmentProcessed:
        session, fragment, decoded, outcome, error = (
            attempt.session,
            attempt.fragment,
            attempt.decoded,
            attempt.outcome,
            attempt.error,
        )
        payload: tuple[bytes, str, int, int] | None = None
        if outcome is not None:
            session.remember_context(outcome.transcript, outcome.translation)
            try:
                assert decoded is not None
                payload = await asyncio.get_running_loop().run_in_executor(
                    self.executor, self._encode, session, fragment, decoded, outcome
                )
            except Exception as exc:
                error = DubbingError(ErrorCode.INTERNAL, f"cannot encode dubbed audio: {exc}", stage=Stage.ENCODE)
        elapsed = time.perf_counter() - attempt.started
        self.metrics.fragment_seconds.observe(elapsed)
        if outcome is not None and outcome.status == "failed" and error is None:
            error = DubbingError(
                ErrorCode.DURATION_MISMATCH_EXCEEDED,
                f"dubbed audio is {outcome.variance:.0%} off the original duration "
                f"(limit {self.settings.duration_variance_partial_max:.0%})",
                stage=Stage.DURATION_MATCH,
                retryable=False,
            )
        if error is not None:
            return self.failed(attempt, error, elapsed)
        assert outcome is not None and payload is not None
        self.metrics.fragments.labels(status=outcome.status).inc()
        audio_bytes, fmt, rate, channels = payload
        wire_audio: str | bytes = (
            audio_bytes if isinstance(fragment.audio, bytes) else base64.b64encode(audio_bytes).decode()
        )
        t = outcome.timings_ms
        result = ev.FragmentProcessed(
            fragment_id=fragment.fragment_id,
            stream_id=session.stream_id,
            sequence_number=fragment.sequence_number,
            status=outcome.status,
            dubbed_audio=wire_audio,
            transcript=outcome.transcript,
            translated_text=outcome.translation,
            metadata=self.metadata(outcome),
            processing_time_ms=int(elapsed * 1000),
            stage_timings=ev.StageTimings(
                asr_ms=t.get("asr_ms", 0),
                translation_ms=t.get("translation_ms", 0),
                tts_ms=t.get("tts_ms", 0),
                duration_match_ms=t.get("duration_match_ms", 0),
                mix_ms=t.get("mix_ms"),
                queue_ms=attempt.queue_ms,
                speaker_ms=t.get("speaker_ms"),
                captions_ms=t.get("captions_ms"),
            ),
            format=fmt,
            sample_rate=rate,
            channels=channels,
            speaker=outcome.speaker,
            speaker_voice=outcome.speaker_voice,
            captions=wire_captions(outcome.captions, session.config),
        )
        log.info(
            "fragment processed",
            extra={
                "status": outcome.status,
                "processing_ms": result.processing_time_ms,
                "variance": round(outcome.variance, 4),
            },
        )
        if self.artifacts is not None and decoded is not None:
            await self._write_artifacts(session, fragment, decoded, outcome, result)
        return result

    def failed(self, attempt: Attempt, error: DubbingError, elapsed: float | None = None) -> ev.FragmentProcessed:
        elapsed = time.perf_counter() - attempt.started if elapsed is None else elapsed
        self.metrics.count_error(error, default_stage=Stage.SESSION)
        self.metrics.fragments.labels(status="failed").inc()
        log.info("fragment failed", extra={"code": str(error.code), "stage": str(error.stage), "reason": error.message})
        outcome = attempt.outcome
        result = ev.FragmentProcessed(
            fragment_id=attempt.fragment.fragment_id,
            stream_id=attempt.session.stream_id,
            sequence_number=attempt.fragment.sequence_number,
            status="failed",
            error=ev.ErrorInfo.from_error(error, Stage.SESSION),
            processing_time_ms=int(elapsed * 1000),
            metadata=self.metadata(outcome),
            transcript=outcome.transcript if outcome else None,
            translated_text=outcome.translation if outcome else None,
        )
        if attempt.decoded is not None:  # it was part of the programme: the caption feed's clock counts it
            result.set_input_duration(round(attempt.decoded.duration_s * 1000))
        return result

    @staticmethod
    def metadata(outcome: FragmentOutcome | None) -> ev.DurationMetadata | None:
        if outcome is None:
            return None
        return ev.DurationMetadata(
            original_duration_ms=round(outcome.original_s * 1000),
            dubbed_duration_ms=round(outcome.dubbed_s * 1000),
            duration_variance_percent=round(outcome.variance * 100, 2),
            speed_ratio=round(outcome.speed_ratio, 3),
        )

    @staticmethod
    def _encode(
        session: StreamSession, fragment: ev.FragmentData, decoded: DecodedAudio, outcome: FragmentOutcome
    ) -> tuple[bytes, str, int, int]:
        c = session.config
        fmt = c.output_format or fragment.format
        rate = c.output_sample_rate or outcome.sample_rate
        samples = resample(outcome.audio, outcome.sample_rate, rate) if outcome.audio is not None else None
        assert samples is not None
        # The format may carry another rate or fewer channels than asked (MP3: 2): report what was sent.
        out = encode_audio(samples, fmt, sample_rate=rate, channels=decoded.channels)
        return out.data, fmt.value, out.sample_rate, out.channels

    async def _write_artifacts(
        self,
        session: StreamSession,
        fragment: ev.FragmentData,
        decoded: DecodedAudio,
        outcome: FragmentOutcome,
        result: ev.FragmentProcessed,
    ) -> None:
        assert self.artifacts is not None
        artifacts = self.artifacts
        record: dict[str, Any] = result.wire()
        record.pop("dubbed_audio", None)
        record.update(source_language=session.config.source_language, target_language=session.config.target_language)
        with contextlib.suppress(Exception):  # artifacts are for debugging; never fail a fragment for them
            await asyncio.get_running_loop().run_in_executor(
                self.executor,
                lambda: artifacts.write(
                    stream_id=session.stream_id,
                    sequence=fragment.sequence_number,
                    fragment_id=fragment.fragment_id,
                    input_audio=decoded.samples,
                    dubbed_audio=outcome.audio,
                    sample_rate=decoded.sample_rate,
                    record=record,
                ),
            )


def wire_captions(captions: FragmentCaptions | None, config: StreamConfig) -> ev.Captions | None:
    """The pipeline's cues (seconds) as the ``captions`` extension (milliseconds within the fragment)."""
    if captions is None:
        return None

    def cues(items: tuple[Cue, ...]) -> list[ev.CaptionCue]:
        return [
            ev.CaptionCue(start_ms=round(c.start * 1000), end_ms=round(c.end * 1000), text=c.text, speaker=c.speaker)
            for c in items
        ]

    return ev.Captions(
        source_language=config.source_language,
        target_language=config.target_language,
        source=cues(captions.source),
        target=cues(captions.target),
        source_timing="proportional" if captions.source_timing == "proportional" else "words",
    )
