"""The dubbing service: connections, streams and fragments, independent of Socket.IO's API.

The Socket.IO namespace hands every event here after parsing; this module decides, runs the
pipeline and calls ``emit``. Invariants it keeps (and the integration tests check):

* every ``fragment:data`` that names a ``fragment_id`` gets exactly one ``fragment:ack`` and exactly
  one ``fragment:processed`` (a duplicate gets only an ack with status ``duplicate``);
* ``fragment:processed`` events of a stream leave in ascending ``sequence_number`` order, rejected
  fragments included, whatever order the pipeline finishes in;
* in-flight counters return to zero whatever happens (error, timeout, disconnect).
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from typing import Any

from livedub.runtime.artifacts import ArtifactWriter
from livedub.runtime.audio.codec import decode, encode_audio, payload_bytes, resample
from livedub.runtime.config import Settings
from livedub.runtime.engines.base import Engines, TranslationOptions
from livedub.runtime.errors import DubbingError, ErrorCode, Stage
from livedub.runtime.logs import fragment_id_var, stream_id_var
from livedub.runtime.metrics import Metrics
from livedub.runtime.pipeline.duration import DurationPolicy
from livedub.runtime.pipeline.language import LanguageCheck
from livedub.runtime.pipeline.pipeline import DubbingPipeline, FragmentJob, FragmentOutcome, StageTimeouts
from livedub.runtime.protocol import events as ev
from livedub.runtime.session.backpressure import ACTIONS, Thresholds
from livedub.runtime.session.session import Admission, StreamConfig, StreamSession, StreamState

log = logging.getLogger(__name__)

Emit = Callable[[str, dict[str, Any], str], Awaitable[None]]
CAPABILITIES = ["asr", "translation", "tts", "duration_matching"]


@dataclass(slots=True)
class Connection:
    sid: str
    worker_id: str | None
    header_stream_id: str | None
    streams: dict[str, StreamSession] = field(default_factory=dict)
    #: Stream initialised with no id from header, auth or payload: fragments route to it.
    anonymous_stream: str | None = None


class DubbingService:
    def __init__(self, settings: Settings, metrics: Metrics, emit: Emit) -> None:
        self.settings = settings
        self.metrics = metrics
        self.emit = emit
        self.engines: Engines | None = None
        self.pipeline: DubbingPipeline | None = None
        self.voices: Any = None  # VoiceRegistry, set at start-up
        # Sized for the configured ASR device; attach_engines re-sizes once "auto" is resolved.
        self.sizing = settings.sizing(settings.asr_device)
        self.executor = ThreadPoolExecutor(self.sizing.worker_threads, thread_name_prefix="engine")
        self.connections: dict[str, Connection] = {}
        self.draining = False
        self.inflight_total = 0
        self._slots = asyncio.Semaphore(self.sizing.pipeline_concurrency)
        self._idle = asyncio.Event()
        self._idle.set()
        self.thresholds = Thresholds(
            settings.backpressure_threshold_low,
            settings.backpressure_threshold_medium,
            settings.backpressure_threshold_high,
            settings.backpressure_threshold_critical,
        )
        self.artifacts = ArtifactWriter(settings.artifacts_dir) if settings.artifacts_enabled else None

    # --- lifecycle ------------------------------------------------------------------------------

    def attach_engines(self, engines: Engines, voices: Any = None) -> None:
        s = self.settings
        self.engines = engines
        self.voices = voices
        device = getattr(engines.asr, "device", "cpu")
        sizing = s.sizing(device)
        if sizing != self.sizing:
            # Before readiness nothing has been submitted, so the pool and the slots can be replaced.
            self.executor.shutdown(wait=False)
            self.executor = ThreadPoolExecutor(sizing.worker_threads, thread_name_prefix="engine")
            self._slots = asyncio.Semaphore(sizing.pipeline_concurrency)
            self.sizing = sizing
        log.info("concurrency", extra={"asr_device": device, **asdict(sizing)})
        self.pipeline = DubbingPipeline(
            engines,
            self.executor,
            timeouts=StageTimeouts(
                s.asr_timeout_ms / 1000,
                s.translation_timeout_ms / 1000,
                s.tts_timeout_ms / 1000,
                s.stretch_timeout_ms / 1000,
            ),
            policy=DurationPolicy(
                s.speed_ratio_min, s.speed_ratio_max, s.duration_variance_success_max, s.duration_variance_partial_max
            ),
            metrics=self.metrics,
            asr_batch_window_s=sizing.asr_batch_window_ms / 1000,
            asr_max_batch=sizing.asr_max_batch,
            language_min_probability=s.asr_language_min_probability,
        )
        if s.asr_language_check != "off" and not engines.asr.detects_language:
            log.warning("ASR_LANGUAGE_CHECK=%s has no effect: %s cannot detect", s.asr_language_check, engines.asr.name)
        self.metrics.info.info({"version": "0.1.0", **engines.describe()})
        if hasattr(engines.translator, "on_fallback"):  # FallbackTranslator: count what DeepL did not serve
            engines.translator.on_fallback = lambda reason: self.metrics.mt_fallbacks.inc()

    @property
    def ready(self) -> bool:
        return self.pipeline is not None and not self.draining

    async def drain(self, timeout_s: float) -> bool:
        """Stop admitting work and wait for in-flight fragments; True if everything finished."""
        self.draining = True
        self.metrics.ready.set(0)
        try:
            await asyncio.wait_for(self._idle.wait(), timeout_s)
            return True
        except TimeoutError:
            log.warning("drain timed out", extra={"inflight": self.inflight_total})
            return False

    def close(self) -> None:
        if self.pipeline is not None:
            self.pipeline.close()
        self.executor.shutdown(wait=False, cancel_futures=True)

    # --- connections ----------------------------------------------------------------------------

    def connect(self, sid: str, worker_id: str | None, stream_id: str | None) -> None:
        if worker_id is not None:
            same_worker = sum(1 for c in self.connections.values() if c.worker_id == worker_id)
            if same_worker >= self.settings.max_connections_per_worker:
                raise DubbingError(
                    ErrorCode.LIMIT_EXCEEDED,
                    f"worker '{worker_id}' already has {same_worker} connections (MAX_CONNECTIONS_PER_WORKER)",
                    stage=Stage.PROTOCOL,
                )
        self.connections[sid] = Connection(sid, worker_id, stream_id)
        self.metrics.connections.inc()

    async def disconnect(self, sid: str) -> None:
        conn = self.connections.pop(sid, None)
        if conn is None:
            return
        self.metrics.connections.dec()
        for session in conn.streams.values():
            self.metrics.streams.dec()
            for task in list(session.tasks):
                task.cancel()
        log.info("client disconnected", extra={"sid": sid, "streams": len(conn.streams)})

    # --- stream lifecycle -------------------------------------------------------------------------

    def _require_ready(self) -> None:
        if self.draining:
            raise DubbingError(
                ErrorCode.SHUTTING_DOWN, "server is draining; reconnect to another replica", stage=Stage.SESSION
            )
        if self.pipeline is None:
            raise DubbingError(
                ErrorCode.SERVICE_UNAVAILABLE, "models are still loading; retry shortly", stage=Stage.SESSION
            )

    def _check_languages(self, init: ev.StreamInit) -> None:
        assert self.engines is not None
        src, dst = init.source_language, init.target_language
        problems = []
        if src not in self.engines.asr.languages:
            problems.append(f"ASR ({self.engines.asr.name}) cannot transcribe '{src}'")
        if not self.engines.translator.supports(src, dst):
            problems.append(f"translation ({self.engines.translator.name}) has no {src}->{dst} pair")
        if dst not in self.engines.tts.languages:
            problems.append(f"TTS ({self.engines.tts.name}) cannot speak '{dst}'")
        if problems:
            raise DubbingError(ErrorCode.UNSUPPORTED_LANGUAGE, "; ".join(problems), stage=Stage.SESSION)

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
        assert self.engines is not None
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
        assert self.engines is not None
        if init.language_check != "off" and not self.engines.asr.detects_language:
            raise DubbingError(
                ErrorCode.INVALID_PAYLOAD,
                f"language_check '{init.language_check}' needs language detection, "
                f"which ASR ({self.engines.asr.name}) cannot do",
                stage=Stage.SESSION,
            )
        return init.language_check

    def stream_init(self, sid: str, init: ev.StreamInit) -> ev.StreamReady:
        conn = self.connections[sid]
        self._require_ready()
        self._check_languages(init)
        stream_id = init.stream_id or conn.header_stream_id or f"{sid}-stream"
        existing = conn.streams.get(stream_id)
        if existing is not None and existing.inflight:
            raise DubbingError(
                ErrorCode.INVALID_PAYLOAD,
                f"stream '{stream_id}' is already active; send stream:end first",
                stage=Stage.SESSION,
            )
        if existing is None and len(conn.streams) >= self.settings.max_streams_per_connection:
            raise DubbingError(
                ErrorCode.LIMIT_EXCEEDED,
                f"this connection already has {len(conn.streams)} streams (MAX_STREAMS_PER_CONNECTION)",
                stage=Stage.SESSION,
            )
        voice = self._resolve_voice(init)
        language_check = self._language_check(init)
        config = StreamConfig(
            stream_id=stream_id,
            source_language=init.source_language,
            target_language=init.target_language,
            voice=voice,
            translation=TranslationOptions(formality=init.formality, glossary_id=init.glossary_id),
            input_sample_rate=init.sample_rate_hz,
            input_channels=init.channels,
            input_format=init.format,
            output_format=init.output_format,
            output_sample_rate=init.output_sample_rate_hz,
            language_check=language_check,
        )
        session = StreamSession(config, self.thresholds)
        if voice is not None and voice.name == "source":
            from livedub.runtime.engines.voices import SourceAudioBuffer

            session.source_audio = SourceAudioBuffer(f"{sid}:{stream_id}", 16000)
        if existing is None:
            self.metrics.streams.inc()
        conn.streams[stream_id] = session
        if not (init.stream_id or conn.header_stream_id):
            conn.anonymous_stream = stream_id
        assert self.engines is not None
        log.info(
            "stream ready",
            extra={
                "stream_id": stream_id,
                "session_id": session.session_id,
                "source": init.source_language,
                "target": init.target_language,
            },
        )
        return ev.StreamReady(
            session_id=session.session_id,
            max_inflight=self.settings.max_inflight,
            capabilities=CAPABILITIES,
            stream_id=stream_id,
            engines=self.engines.describe(init.target_language),
            source_language=init.source_language,
            target_language=init.target_language,
            voice_profile=voice.name if voice else None,
        )

    def find_stream(self, sid: str, stream_id: str | None) -> StreamSession:
        conn = self.connections[sid]
        if stream_id is not None and stream_id in conn.streams:
            return conn.streams[stream_id]
        if conn.anonymous_stream is not None and len(conn.streams) == 1:
            return conn.streams[conn.anonymous_stream]
        if stream_id is None and len(conn.streams) == 1:
            return next(iter(conn.streams.values()))
        if stream_id is None and conn.header_stream_id in conn.streams:
            return conn.streams[conn.header_stream_id]
        wanted = f"stream '{stream_id}'" if stream_id else "no stream"
        raise DubbingError(
            ErrorCode.STREAM_NOT_INITIALIZED,
            f"{wanted} is initialised on this connection; send stream:init first",
            stage=Stage.SESSION,
        )

    def set_paused(self, sid: str, stream_id: str | None, paused: bool) -> ev.StreamState:
        session = self.find_stream(sid, stream_id)
        if session.state in (StreamState.ENDING, StreamState.ENDED):
            raise DubbingError(ErrorCode.STREAM_ENDED, "stream has ended", stage=Stage.SESSION)
        session.state = StreamState.PAUSED if paused else StreamState.ACTIVE
        return ev.StreamState(stream_id=session.stream_id, state=session.state.value, inflight=session.inflight)

    async def stream_end(self, sid: str, stream_id: str | None) -> ev.StreamComplete:
        session = self.find_stream(sid, stream_id)
        session.state = StreamState.ENDING
        # Flush: every admitted fragment is delivered before the stream is confirmed closed.
        await session.idle.wait()
        async with session.delivery_lock:  # the last results are emitted under this lock
            session.state = StreamState.ENDED
        conn = self.connections.get(sid)
        if conn is not None and conn.streams.get(session.stream_id) is session:
            del conn.streams[session.stream_id]
            if conn.anonymous_stream == session.stream_id:
                conn.anonymous_stream = None
            self.metrics.streams.dec()
        stats = session.stats
        return ev.StreamComplete(
            stream_id=session.stream_id,
            session_id=session.session_id,
            fragments_received=stats.received,
            fragments_delivered=stats.delivered,
            success=stats.success,
            partial=stats.partial,
            failed=stats.failed,
        )

    # --- fragments --------------------------------------------------------------------------------

    async def fragment(self, sid: str, fragment: ev.FragmentData) -> ev.FragmentAck:
        """Admit one fragment and start processing it; returns the ack (already emitted)."""
        session: StreamSession | None = None
        try:
            self._require_ready()
            session = self.find_stream(sid, fragment.stream_id)
            stream_id_var.set(session.stream_id)
            self._check_size(fragment)
            if self.inflight_total >= self.settings.max_pod_inflight:
                raise DubbingError(
                    ErrorCode.BACKPRESSURE_EXCEEDED,
                    f"server at capacity ({self.inflight_total} fragments in flight)",
                    stage=Stage.SESSION,
                )
            admission = session.admit(fragment.fragment_id, fragment.sequence_number)
        except DubbingError as error:
            await self.reject(sid, fragment, error, session)
            return ev.FragmentAck(
                fragment_id=fragment.fragment_id, status="rejected", error=ev.ErrorInfo.from_error(error)
            )

        ack = ev.FragmentAck(
            fragment_id=fragment.fragment_id,
            status="duplicate" if admission is Admission.DUPLICATE else "queued",
            stream_id=session.stream_id,
            sequence_number=fragment.sequence_number,
        )
        await self.emit("fragment:ack", ack.wire(), sid)
        if admission is Admission.DUPLICATE:
            return ack
        self._inflight(+1)
        task = asyncio.create_task(self._run_fragment(sid, session, fragment))
        session.tasks.add(task)
        task.add_done_callback(session.tasks.discard)
        await self._maybe_backpressure(sid, session)
        return ack

    async def reject(
        self,
        sid: str,
        fragment: ev.FragmentData | None,
        error: DubbingError,
        session: StreamSession | None,
        *,
        fragment_id: str | None = None,
        event: str = "fragment:data",
    ) -> None:
        """Refuse a fragment before it is queued: ack ``rejected``, then its failed result, then ``error``."""
        fragment_id = fragment.fragment_id if fragment else fragment_id
        self.metrics.rejected.labels(code=str(error.code)).inc()
        self.metrics.errors.labels(stage=str(error.stage or Stage.PROTOCOL), code=str(error.code)).inc()
        log.info(
            "fragment rejected", extra={"code": str(error.code), "fragment_id": fragment_id, "reason": error.message}
        )
        stream_id = session.stream_id if session else None
        if fragment_id is not None:
            info = ev.ErrorInfo.from_error(error)
            ack = ev.FragmentAck(
                fragment_id=fragment_id,
                status="rejected",
                stream_id=stream_id,
                error=info,
                sequence_number=fragment.sequence_number if fragment else None,
            )
            await self.emit("fragment:ack", ack.wire(), sid)
            result = ev.FragmentProcessed(
                fragment_id=fragment_id,
                status="failed",
                error=info,
                stream_id=stream_id,
                sequence_number=fragment.sequence_number if fragment else None,
                processing_time_ms=0,
            )
            # Keep stream order when the rejected fragment has a free sequence slot.
            if session is not None and fragment is not None and fragment.sequence_number not in session.order:
                async with session.delivery_lock:
                    session.order.admit(fragment.sequence_number)
                    ready = session.order.complete(fragment.sequence_number, result)
                    for item in ready:
                        await self._deliver(sid, session, item)
            else:
                await self.emit("fragment:processed", result.wire(), sid)
        await self.emit(
            "error",
            ev.ErrorEvent.from_error(error, event=event, stream_id=stream_id, fragment_id=fragment_id).wire(),
            sid,
        )

    def _check_size(self, fragment: ev.FragmentData) -> None:
        """Refuse oversize audio before it is queued (base64 is 4/3 of the bytes it carries)."""
        size = len(fragment.audio) if isinstance(fragment.audio, bytes) else len(fragment.audio) * 3 // 4
        if size > self.settings.fragment_max_bytes:
            raise DubbingError(
                ErrorCode.INVALID_AUDIO,
                f"fragment audio is {size} bytes, over FRAGMENT_MAX_BYTES={self.settings.fragment_max_bytes}",
                stage=Stage.DECODE,
            )

    def _inflight(self, delta: int) -> None:
        self.inflight_total += delta
        self.metrics.inflight.set(self.inflight_total)
        if self.inflight_total == 0:
            self._idle.set()
        else:
            self._idle.clear()

    async def _maybe_backpressure(self, sid: str, session: StreamSession) -> None:
        severity = session.backpressure_change()
        if severity is None:
            return
        self.metrics.backpressure.labels(severity=severity.value).inc()
        event = ev.Backpressure(
            stream_id=session.stream_id,
            severity=severity,
            action=ACTIONS[severity],
            current_inflight=session.inflight,
            max_inflight=self.settings.max_inflight,
            threshold_exceeded=None if severity is ev.BackpressureSeverity.NONE else severity.value,
        )
        await self.emit("backpressure", event.wire(), sid)

    async def _run_fragment(self, sid: str, session: StreamSession, fragment: ev.FragmentData) -> None:
        fragment_id_var.set(fragment.fragment_id)
        started = time.perf_counter()
        outcome: FragmentOutcome | None = None
        error: DubbingError | None = None
        decoded = None
        queue_ms = 0
        waiting = True
        self.metrics.queue_depth.inc()
        try:
            async with self._slots:
                self.metrics.queue_depth.dec()
                waiting = False
                queue_ms = int((time.perf_counter() - started) * 1000)
                decoded = await asyncio.get_running_loop().run_in_executor(self.executor, self._decode, fragment)
                outcome = await self._pipeline().process(self._job(session, decoded))
        except DubbingError as exc:
            error = exc
        except asyncio.CancelledError:
            # Client disconnected: nobody to deliver to; just release the accounting.
            if waiting:
                self.metrics.queue_depth.dec()
            self._inflight(-1)
            raise
        except Exception as exc:  # a bug, not an engine failure: still answer the fragment
            log.exception("unexpected failure processing fragment")
            error = DubbingError(ErrorCode.INTERNAL, f"internal error: {type(exc).__name__}", stage=Stage.SESSION)
        try:
            result = await self._result(session, fragment, decoded, outcome, error, started, queue_ms)
            async with session.delivery_lock:
                ready = session.complete(fragment.fragment_id, result, result.status)
                for item in ready:
                    await self._deliver(sid, session, item)
        finally:
            # Only after delivery: a drain waiting for "nothing in flight" must not close the
            # connection between the result being computed and being sent.
            self._inflight(-1)
        await self._maybe_backpressure(sid, session)

    def _pipeline(self) -> DubbingPipeline:
        if self.pipeline is None:
            raise DubbingError(ErrorCode.SERVICE_UNAVAILABLE, "models not loaded", stage=Stage.SESSION)
        return self.pipeline

    def _decode(self, fragment: ev.FragmentData) -> Any:
        data = payload_bytes(fragment.audio)
        limit_s = self.settings.fragment_max_duration_ms / 1000
        # The limit goes into the decoder, which stops there: checking afterwards let a small
        # payload expand into gigabytes first (issue 11, item 5).
        audio = decode(
            data, fragment.format, sample_rate=fragment.sample_rate, channels=fragment.channels, max_duration_s=limit_s
        )
        if audio.duration_s > limit_s:
            raise DubbingError(
                ErrorCode.INVALID_AUDIO,
                f"fragment lasts {audio.duration_s:.1f}s, over the {limit_s:.0f}s limit",
                stage=Stage.DECODE,
            )
        return audio

    def _job(self, session: StreamSession, decoded: Any) -> FragmentJob:
        c = session.config
        reference = None
        if session.source_audio is not None:
            session.source_audio.append(resample(decoded.samples, decoded.sample_rate, 16000))
            reference = session.source_audio.reference()
        return FragmentJob(
            audio=decoded,
            source_language=c.source_language,
            target_language=c.target_language,
            voice=c.voice,
            translation_options=c.translation,
            previous_transcript=session.previous_transcript,
            source_reference=reference,
            language_check=c.language_check,
        )

    async def _result(
        self,
        session: StreamSession,
        fragment: ev.FragmentData,
        decoded: Any,
        outcome: FragmentOutcome | None,
        error: DubbingError | None,
        started: float,
        queue_ms: int,
    ) -> ev.FragmentProcessed:
        common: dict[str, Any] = {
            "fragment_id": fragment.fragment_id,
            "stream_id": session.stream_id,
            "sequence_number": fragment.sequence_number,
        }
        if outcome is not None:
            session.remember_context(outcome.transcript, outcome.translation)
            try:
                payload = await asyncio.get_running_loop().run_in_executor(
                    self.executor, self._encode, session, fragment, decoded, outcome
                )
            except Exception as exc:
                error = DubbingError(ErrorCode.INTERNAL, f"cannot encode dubbed audio: {exc}", stage=Stage.ENCODE)
                payload = None
        elapsed = time.perf_counter() - started
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
            self.metrics.errors.labels(stage=str(error.stage or Stage.SESSION), code=str(error.code)).inc()
            self.metrics.fragments.labels(status="failed").inc()
            log.info(
                "fragment failed", extra={"code": str(error.code), "stage": str(error.stage), "reason": error.message}
            )
            return ev.FragmentProcessed(
                **common,
                status="failed",
                error=ev.ErrorInfo.from_error(error, Stage.SESSION),
                processing_time_ms=int(elapsed * 1000),
                metadata=self._metadata(outcome),
                transcript=outcome.transcript if outcome else None,
                translated_text=outcome.translation if outcome else None,
            )
        assert outcome is not None and payload is not None
        self.metrics.fragments.labels(status=outcome.status).inc()
        audio_bytes, fmt, rate, channels = payload
        wire_audio: str | bytes = (
            audio_bytes if isinstance(fragment.audio, bytes) else base64.b64encode(audio_bytes).decode()
        )
        t = outcome.timings_ms
        result = ev.FragmentProcessed(
            **common,
            status=outcome.status,
            dubbed_audio=wire_audio,
            transcript=outcome.transcript,
            translated_text=outcome.translation,
            metadata=self._metadata(outcome),
            processing_time_ms=int(elapsed * 1000),
            stage_timings=ev.StageTimings(
                asr_ms=t.get("asr_ms", 0),
                translation_ms=t.get("translation_ms", 0),
                tts_ms=t.get("tts_ms", 0),
                duration_match_ms=t.get("duration_match_ms", 0),
                queue_ms=queue_ms,
            ),
            format=fmt,
            sample_rate=rate,
            channels=channels,
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

    @staticmethod
    def _metadata(outcome: FragmentOutcome | None) -> ev.DurationMetadata | None:
        if outcome is None:
            return None
        return ev.DurationMetadata(
            original_duration_ms=round(outcome.original_s * 1000),
            dubbed_duration_ms=round(outcome.dubbed_s * 1000),
            duration_variance_percent=round(outcome.variance * 100, 2),
            speed_ratio=round(outcome.speed_ratio, 3),
        )

    def _encode(
        self, session: StreamSession, fragment: ev.FragmentData, decoded: Any, outcome: FragmentOutcome
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
        decoded: Any,
        outcome: FragmentOutcome,
        result: ev.FragmentProcessed,
    ) -> None:
        assert self.artifacts is not None
        record = result.wire()
        record.pop("dubbed_audio", None)
        record.update(source_language=session.config.source_language, target_language=session.config.target_language)
        with contextlib.suppress(Exception):  # artifacts are for debugging; never fail a fragment for them
            await asyncio.get_running_loop().run_in_executor(
                self.executor,
                lambda: self.artifacts.write(  # type: ignore[union-attr]
                    stream_id=session.stream_id,
                    sequence=fragment.sequence_number,
                    fragment_id=fragment.fragment_id,
                    input_audio=decoded.samples,
                    dubbed_audio=outcome.audio,
                    sample_rate=decoded.sample_rate,
                    record=record,
                ),
            )

    async def _deliver(self, sid: str, session: StreamSession, result: ev.FragmentProcessed) -> None:
        session.stats.count(result.status)
        await self.emit("fragment:processed", result.wire(), sid)
