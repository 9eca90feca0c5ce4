"""The dubbing service: connections, streams and fragments, in typed messages only.

The protocol edge (``namespace.py``) parses each event with the stream's dialect and hands it here;
this module decides, runs the pipeline and sends typed messages (``protocol.events``) through
``send``, which the edge serialises in the stream's dialect. No event name or payload shape lives
here. Invariants it keeps (and the integration tests check):

* every ``fragment:data`` that names a ``fragment_id`` gets exactly one ack and exactly one result
  (a duplicate gets only an ack with status ``duplicate``);
* results of a stream leave in ascending ``sequence_number`` order, rejected fragments included,
  whatever order the pipeline finishes in;
* with a deadline (``timeout_ms``) every fragment is answered before it: one that cannot finish in
  time is answered ``failed`` / ``TIMEOUT``, so no later fragment waits past its own deadline;
* in-flight counters return to zero whatever happens (error, timeout, disconnect).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import asdict
from typing import Any

from livedub.runtime.audio.codec import DecodedAudio, decode, payload_bytes, resample
from livedub.runtime.config import Settings
from livedub.runtime.engines.base import Engines
from livedub.runtime.engines.speaker_embedding import SpeakerEmbedder
from livedub.runtime.errors import DubbingError, ErrorCode, Stage
from livedub.runtime.logs import fragment_id_var, stream_id_var
from livedub.runtime.metrics import Metrics
from livedub.runtime.pipeline.duration import DurationPolicy
from livedub.runtime.pipeline.mix import LoudnessPolicy, Mixer
from livedub.runtime.pipeline.pipeline import DubbingPipeline, FragmentJob, FragmentOutcome, StageTimeouts
from livedub.runtime.pipeline.speakers import LazyEmbedder
from livedub.runtime.protocol import events as ev
from livedub.runtime.protocol.dialects.base import Outbound
from livedub.runtime.server.connections import Connection, default_stream_id
from livedub.runtime.server.move import StreamMover, move_error
from livedub.runtime.server.placement import Placement
from livedub.runtime.server.results import Attempt, ResultBuilder
from livedub.runtime.server.shedding import Candidate, Shedder
from livedub.runtime.server.streams import StreamFactory
from livedub.runtime.session.backpressure import ACTIONS, Thresholds
from livedub.runtime.session.session import Admission, StreamSession, StreamState

log = logging.getLogger(__name__)

#: ``send(sid, message, dialect)``: the edge serialises ``message`` in ``dialect`` and emits it.
Send = Callable[[str, Outbound, str], Awaitable[None]]
CAPABILITIES = ["asr", "translation", "tts", "duration_matching"]


async def _no_close(sid: str) -> None:
    """Until the app wires the Engine.IO close in (a service built without a server)."""


class DubbingService:
    def __init__(self, settings: Settings, metrics: Metrics, send: Send) -> None:
        self.settings = settings
        self.metrics = metrics
        self.send = send
        self.engines: Engines | None = None
        self.pipeline: DubbingPipeline | None = None
        self.voices: Any = None  # VoiceRegistry, set at start-up
        # Sized for the configured ASR device; attach_engines re-sizes once "auto" is resolved.
        self.sizing = settings.sizing(settings.asr_device)
        self.executor = ThreadPoolExecutor(self.sizing.worker_threads, thread_name_prefix="engine")
        self.results = ResultBuilder(settings, metrics, self.executor)
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
        self.streams: StreamFactory | None = None
        self.placement = Placement(
            settings,
            metrics,
            streams=self.stream_count,
            loaded=lambda: self.pipeline is not None,
            draining=lambda: self.draining,
            shedding=lambda: self.shedder.active,
        )
        self.shedder = Shedder(self._live_keys)
        #: Set by the app: closes one connection at the Engine.IO level (so the client reconnects).
        self.close_connection: Callable[[str], Awaitable[None]] = _no_close
        self.mover = StreamMover(
            notify=self._notify_move,
            close=lambda sid: self.close_connection(sid),
            streams_of=lambda sid: list(self.connections[sid].streams) if sid in self.connections else [],
            on_told=lambda reason: self.metrics.streams_moved.labels(reason=reason).inc(),
        )
        self.placement.on_leaving = self.move_all
        self.placement.on_staying = self.mover.cancel
        self.placement.on_shed = self.shed

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
            self.results.executor = self.executor
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
                s.mix_timeout_ms / 1000,
            ),
            policy=DurationPolicy(
                s.speed_ratio_min, s.speed_ratio_max, s.duration_variance_success_max, s.duration_variance_partial_max
            ),
            metrics=self.metrics,
            translation_budget=s.mt_budget,
            asr_batch_window_s=sizing.asr_batch_window_ms / 1000,
            asr_max_batch=sizing.asr_max_batch,
            language_min_probability=s.asr_language_min_probability,
            mixer=Mixer(
                LoudnessPolicy(s.loudness_match_dub, s.loudness_max_gain_db, s.loudness_ceiling_db),
                engines.extras.get("separation"),  # type: ignore[arg-type]  # extras are untyped by stage
            ),
            speaker_embedder=LazyEmbedder(SpeakerEmbedder),
        )
        self.streams = StreamFactory(s, engines, voices, self.thresholds)
        if s.asr_language_check != "off" and not engines.asr.detects_language:
            log.warning("ASR_LANGUAGE_CHECK=%s has no effect: %s cannot detect", s.asr_language_check, engines.asr.name)
        self.metrics.info.info({"version": "0.1.0", **engines.describe()})
        if hasattr(engines.translator, "on_fallback"):  # Fallback/LlmTranslator: count what the primary did not serve
            engines.translator.on_fallback = lambda reason: self.metrics.mt_fallbacks.inc()
        if hasattr(engines.translator, "on_guard"):  # LlmTranslator: rejected answers, by reason
            engines.translator.on_guard = lambda reason: self.metrics.mt_guard.labels(reason=reason).inc()

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
        self.mover.close()
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
        self.mover.forget(sid)
        conn = self.connections.pop(sid, None)
        if conn is None:
            return
        self.metrics.connections.dec()
        for session in conn.streams.values():
            self.metrics.streams.dec()
            for task in list(session.tasks):
                task.cancel()
            # Nobody is left to deliver to: a stream:end waiting for the flush must not wait forever.
            session.idle.set()
        log.info("client disconnected", extra={"sid": sid, "streams": len(conn.streams)})

    async def move_all(self) -> None:
        """Ask every live stream to move (server/move.py): this pod is leaving the pool."""
        live = [(sid, session) for sid, c in list(self.connections.items()) for session in c.streams.values()]
        self.mover.request((sid, session.stream_id) for sid, session in live)
        for sid, session in live:
            await self.mover.boundary(sid, session.stream_id, session.inflight)

    def _live_keys(self) -> list[tuple[str, str]]:
        return [(sid, stream_id) for sid, c in self.connections.items() for stream_id in c.streams]

    async def shed(self, value: str | None) -> None:
        """The operator's shed request appeared or changed (``value``) or went (None): server/shedding.py."""
        if value is not None and value == self.shedder.handled:
            return  # the kubelet showed an old value again
        previous = self.shedder.stop()  # a new request replaces the last one; None ends it
        leaving = self.placement.leaving  # a drain moves every stream anyway: neither cancel nor choose
        if not leaving:
            self.mover.cancel(previous)  # streams not yet told stay (a new request may choose them again)
        if value is None:
            return
        candidates = [
            Candidate((sid, session.stream_id), session.inflight, order)
            for order, (sid, c) in enumerate(list(self.connections.items()))
            for session in c.streams.values()
            if not leaving
        ]
        keys = self.shedder.start(value, candidates)
        if keys:
            log.info("shedding streams", extra={"asked": value, "streams": len(keys)})
        self.mover.request(keys, reason="rebalance")
        for sid, stream_id in keys:
            conn = self.connections.get(sid)  # a told connection may have gone during the awaits
            session = None if conn is None else conn.streams.get(stream_id)
            if session is not None:
                await self.mover.boundary(sid, stream_id, session.inflight)

    async def _notify_move(self, sid: str, stream_id: str, error: DubbingError) -> None:
        conn = self.connections.get(sid)
        session = None if conn is None else conn.streams.get(stream_id)
        await self._send(sid, ev.ErrorEvent.from_error(error, stream_id=stream_id), session)

    async def message_too_large(self, sid: str, size: int) -> None:
        """A long-polling POST of this connection was over MAX_MESSAGE_BYTES and was dropped unread
        (server/transport.py): say so, since the fragment in it will never be answered."""
        limit = self.settings.max_message_bytes
        error = DubbingError(
            ErrorCode.LIMIT_EXCEEDED,
            f"a message over MAX_MESSAGE_BYTES ({limit} bytes; {size} read) was dropped unread: the fragment "
            f"in it gets no answer; send fragments under FRAGMENT_MAX_BYTES ({self.settings.fragment_max_bytes})",
            stage=Stage.PROTOCOL,
        )
        log.warning("oversize message dropped", extra={"sid": sid, "bytes": size})
        self.metrics.count_error(error)
        await self._send(sid, ev.ErrorEvent.from_error(error))

    def stream_count(self) -> int:
        """Live streams across every connection of this process."""
        return sum(len(c.streams) for c in self.connections.values())

    def dialect_of(self, sid: str, stream_id: str | None = None) -> str:
        """The dialect answers on this connection go out in: the stream's, else the connection's."""
        conn = self.connections.get(sid)
        if conn is None:
            return "guide"
        session = conn.streams.get(stream_id) if stream_id is not None else None
        return session.config.dialect if session is not None else conn.dialect

    async def _send(self, sid: str, message: Outbound, session: StreamSession | None = None) -> None:
        dialect = session.config.dialect if session is not None else self.dialect_of(sid)
        await self.send(sid, message, dialect)

    # --- stream lifecycle -------------------------------------------------------------------------

    def _require_ready(self) -> StreamFactory:
        if self.draining:
            raise DubbingError(
                ErrorCode.SHUTTING_DOWN, "server is draining; reconnect to another replica", stage=Stage.SESSION
            )
        if self.pipeline is None or self.streams is None:
            raise DubbingError(
                ErrorCode.SERVICE_UNAVAILABLE, "models are still loading; retry shortly", stage=Stage.SESSION
            )
        return self.streams

    def stream_init(self, sid: str, init: ev.StreamInit, dialect: str = "guide") -> ev.StreamReady:
        conn = self.connections[sid]
        conn.dialect = dialect
        factory = self._require_ready()
        factory.check_languages(init)
        factory.mix(init)  # refuses a mix this pod cannot make before anything is admitted
        stream_id = init.stream_id or conn.header_stream_id or default_stream_id(sid)
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
        if existing is None:
            try:
                self.placement.admit_new_stream()
            except DubbingError as refusal:
                if not conn.streams:  # nothing else on this connection: let it go to another pod
                    self.mover.close_if_idle_later(sid, (refusal.retry_after_ms or 0) / 1000)
                raise
        session = factory.session(f"{sid}:{stream_id}", stream_id, init, dialect)
        self._preload_speakers(session)
        if existing is None:
            self.metrics.streams.inc()
        conn.streams[stream_id] = session
        if not (init.stream_id or conn.header_stream_id):
            conn.anonymous_stream = stream_id
        log.info(
            "stream ready",
            extra={
                "stream_id": stream_id,
                "session_id": session.session_id,
                "source": init.source_language,
                "target": init.target_language,
                "dialect": dialect,
                "timeout_ms": session.config.timeout_ms,
            },
        )
        assert self.engines is not None
        voice = session.config.voice
        return ev.StreamReady(
            session_id=session.session_id,
            max_inflight=min(self.settings.max_inflight, init.max_inflight or self.settings.max_inflight),
            capabilities=CAPABILITIES,
            stream_id=stream_id,
            engines=self.engines.describe(init.target_language),
            source_language=init.source_language,
            target_language=init.target_language,
            voice_profile=voice.name if voice else None,
            mix=session.config.mix.mode,
        )

    def _preload_speakers(self, session: StreamSession) -> None:
        """Load the speaker model in the background at the first stream that asks, not in its first fragment."""
        embedder = self.pipeline.speaker_embedder if self.pipeline is not None else None
        if session.speakers is not None and embedder is not None and not embedder.loaded:
            future = self.executor.submit(embedder.load)
            future.add_done_callback(_log_speaker_load_failure)

    def find_stream(self, sid: str, stream_id: str | None) -> StreamSession:
        return self.connections[sid].find_stream(stream_id)

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
        if conn is not None and conn.remove(session):
            self.metrics.streams.dec()
            self.mover.ended(sid, session.stream_id)
        stats = session.stats
        return ev.StreamComplete(
            stream_id=session.stream_id,
            session_id=session.session_id,
            fragments_received=stats.received,
            fragments_delivered=stats.delivered,
            success=stats.success,
            partial=stats.partial,
            failed=stats.failed,
            avg_processing_time_ms=stats.avg_processing_time_ms,
            deadline_misses=stats.deadline_misses if session.config.timeout_ms else None,
        )

    # --- fragments --------------------------------------------------------------------------------

    async def fragment(self, sid: str, fragment: ev.FragmentData) -> ev.FragmentAck:
        """Admit one fragment and start processing it; returns the ack (already sent)."""
        arrived = time.monotonic()
        session: StreamSession | None = None
        try:
            self._require_ready()
            session = self.find_stream(sid, fragment.stream_id)
            stream_id_var.set(session.stream_id)
            if session.is_duplicate(fragment.fragment_id):
                # Before any other check: a resend of something answered or in flight gets only
                # "duplicate", never a second, contradictory result (paused, full, ...).
                duplicate = ev.FragmentAck(
                    fragment_id=fragment.fragment_id,
                    status="duplicate",
                    stream_id=session.stream_id,
                    sequence_number=fragment.sequence_number,
                )
                await self._send(sid, duplicate, session)
                return duplicate
            if self.mover.refuses(sid, session.stream_id):
                raise move_error(session.stream_id, told=False)
            self._check_size(fragment)
            if self.inflight_total >= self.settings.max_pod_inflight:
                raise DubbingError(
                    ErrorCode.BACKPRESSURE_EXCEEDED,
                    f"server at capacity ({self.inflight_total} fragments in flight)",
                    stage=Stage.SESSION,
                )
            admission = session.admit(fragment.fragment_id, fragment.sequence_number)
        except DubbingError as error:
            return await self.reject(
                sid,
                error,
                session,
                fragment_id=fragment.fragment_id,
                stream_id=fragment.stream_id,
                sequence_number=fragment.sequence_number,
            )

        ack = ev.FragmentAck(
            fragment_id=fragment.fragment_id,
            status="duplicate" if admission is Admission.DUPLICATE else "queued",
            stream_id=session.stream_id,
            sequence_number=fragment.sequence_number,
            queue_position=session.queue_position(fragment.fragment_id),
        )
        await self._send(sid, ack, session)
        if admission is Admission.DUPLICATE:
            return ack
        self._inflight(+1)
        task = asyncio.create_task(self._run_fragment(sid, session, fragment, arrived))
        session.tasks.add(task)
        task.add_done_callback(session.tasks.discard)
        # Released when the task ends however it ends — after delivery, on error, or cancelled by a
        # disconnect before it ever ran (its body, and any finally in it, would then never run).
        task.add_done_callback(lambda _: self._inflight(-1))
        await self._maybe_backpressure(sid, session)
        return ack

    async def reject(
        self,
        sid: str,
        error: DubbingError,
        session: StreamSession | None,
        *,
        fragment_id: str | None,
        stream_id: str | None = None,
        sequence_number: int | None = None,
        event: str = "fragment:data",
    ) -> ev.FragmentAck:
        """Refuse a fragment before it is queued: ack ``rejected``, then its failed result, then ``error``.

        The result takes its place in the stream's order like any other, so a rejection never
        overtakes an earlier fragment; without a known stream or number it goes out at once.
        """
        self.metrics.rejected.labels(code=str(error.code)).inc()
        self.metrics.count_error(error)
        log.info(
            "fragment rejected", extra={"code": str(error.code), "fragment_id": fragment_id, "reason": error.message}
        )
        if session is None and stream_id is not None and sid in self.connections:
            session = self.connections[sid].streams.get(stream_id)
        stream_id = session.stream_id if session else stream_id
        info = ev.ErrorInfo.from_error(error)
        ack = ev.FragmentAck(
            fragment_id=fragment_id or "",
            status="rejected",
            stream_id=stream_id,
            error=info,
            sequence_number=sequence_number,
        )
        if fragment_id is not None:
            await self._send(sid, ack, session)
            result = ev.FragmentProcessed(
                fragment_id=fragment_id,
                status="failed",
                error=info,
                stream_id=stream_id,
                sequence_number=sequence_number,
                processing_time_ms=0,
            )
            if session is not None and sequence_number is not None:
                async with session.delivery_lock:
                    for item in session.rejected(sequence_number, result):
                        await self._deliver(sid, session, item)
            else:
                await self._send(sid, result, session)
        error_event = ev.ErrorEvent.from_error(error, event=event, stream_id=stream_id, fragment_id=fragment_id)
        await self._send(sid, error_event, session)
        return ack

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
        await self._send(sid, event, session)

    def _deadline(self, session: StreamSession, arrived: float) -> float | None:
        """Loop time by which this fragment's answer must be sent, or None without a deadline."""
        timeout_ms = session.config.timeout_ms
        if timeout_ms is None:
            return None
        margin_ms = min(self.settings.deadline_margin_ms, timeout_ms // 2)
        return asyncio.get_running_loop().time() - (time.monotonic() - arrived) + (timeout_ms - margin_ms) / 1000

    async def _run_fragment(self, sid: str, session: StreamSession, fragment: ev.FragmentData, arrived: float) -> None:
        fragment_id_var.set(fragment.fragment_id)
        started = time.perf_counter()
        stage = [Stage.SESSION]  # the stage running now, for a deadline's error
        queue_ms = 0
        decoded: DecodedAudio | None = None
        waiting = True
        self.metrics.queue_depth.inc()
        try:
            async with asyncio.timeout_at(self._deadline(session, arrived)):
                async with self._slots:
                    self.metrics.queue_depth.dec()
                    waiting = False
                    queue_ms = int((time.perf_counter() - started) * 1000)
                    decoded, outcome, error = await self._dub(session, fragment, stage)
                stage[0] = Stage.ENCODE
                result = await self.results.build(
                    Attempt(session, fragment, decoded, outcome, error, started, queue_ms)
                )
        except TimeoutError:
            if waiting:
                self.metrics.queue_depth.dec()
            result = self._deadline_missed(session, fragment, decoded, stage[0], started, queue_ms)
        except asyncio.CancelledError:
            # Client disconnected: nobody to deliver to; the done callback releases the accounting.
            if waiting:
                self.metrics.queue_depth.dec()
            raise
        # In-flight accounting ends only after delivery (the task's done callback): a drain waiting
        # for "nothing in flight" must not close the connection between computing and sending.
        async with session.delivery_lock:
            for item in session.complete(fragment.fragment_id, result, result.status):
                await self._deliver(sid, session, item)
        await self._maybe_backpressure(sid, session)
        await self.mover.boundary(sid, session.stream_id, session.inflight)

    async def _dub(
        self, session: StreamSession, fragment: ev.FragmentData, stage: list[Stage]
    ) -> tuple[DecodedAudio | None, FragmentOutcome | None, DubbingError | None]:
        """Decode and run the pipeline; every failure becomes the fragment's typed error."""
        decoded: DecodedAudio | None = None
        try:
            stage[0] = Stage.DECODE
            # A mix over the original needs its own channels, not only the mono mix-down ASR hears.
            keep = session.config.mix.mode != "dub"
            decoded = await asyncio.get_running_loop().run_in_executor(self.executor, self._decode, fragment, keep)
            job = self._job(session, decoded, fragment.sequence_number)
            outcome = await self._pipeline().process(job, on_stage=lambda s: stage.__setitem__(0, s))
            return decoded, outcome, None
        except DubbingError as exc:
            return decoded, None, exc
        except Exception as exc:  # a bug, not an engine failure: still answer the fragment
            log.exception("unexpected failure processing fragment")
            error = DubbingError(ErrorCode.INTERNAL, f"internal error: {type(exc).__name__}", stage=Stage.SESSION)
            return decoded, None, error

    def _deadline_missed(
        self,
        session: StreamSession,
        fragment: ev.FragmentData,
        decoded: DecodedAudio | None,
        stage: Stage,
        started: float,
        queue_ms: int,
    ) -> ev.FragmentProcessed:
        timeout_ms = session.config.timeout_ms
        session.stats.deadline_misses += 1
        self.metrics.deadline_misses.inc()
        error = DubbingError(
            ErrorCode.TIMEOUT,
            f"fragment could not be dubbed within the stream's {timeout_ms} ms deadline (still in {stage.value}); "
            "play the original",
            stage=stage,
            retryable=True,
        )
        return self.results.failed(Attempt(session, fragment, decoded, None, error, started, queue_ms), error)

    def _pipeline(self) -> DubbingPipeline:
        if self.pipeline is None:
            raise DubbingError(ErrorCode.SERVICE_UNAVAILABLE, "models not loaded", stage=Stage.SESSION)
        return self.pipeline

    def _decode(self, fragment: ev.FragmentData, keep_channels: bool = False) -> DecodedAudio:
        data = payload_bytes(fragment.audio)
        limit_s = self.settings.fragment_max_duration_ms / 1000
        # The limit goes into the decoder, which stops there: checking afterwards let a small
        # payload expand into gigabytes first (issue 11, item 5).
        audio = decode(
            data,
            fragment.format,
            sample_rate=fragment.sample_rate,
            channels=fragment.channels,
            max_duration_s=limit_s,
            keep_channels=keep_channels,
        )
        if audio.duration_s > limit_s:
            raise DubbingError(
                ErrorCode.INVALID_AUDIO,
                f"fragment lasts {audio.duration_s:.1f}s, over the {limit_s:.0f}s limit",
                stage=Stage.DECODE,
            )
        return audio

    def _job(self, session: StreamSession, decoded: DecodedAudio, sequence: int) -> FragmentJob:
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
            domain_hints=c.domain_hints,
            mix=c.mix,
            mix_position=(session.duck_carry, sequence) if session.duck_carry is not None else None,
            speakers=session.speakers,
            captions=c.captions,
        )

    async def _deliver(self, sid: str, session: StreamSession, result: ev.FragmentProcessed) -> None:
        session.stats.count(result.status, result.processing_time_ms or 0)
        await self._send(sid, result, session)


def _log_speaker_load_failure(future: Future[object]) -> None:
    if (error := future.exception()) is not None:
        log.error("speaker model failed to load", exc_info=error)
