"""What the ``/console`` page shows: a bounded record of recent streams, fragment latencies and errors.

The feed watches the typed messages the runtime sends (``observe`` is called with every outbound
message, in whichever dialect it goes out), so no dubbing code knows the console exists and both
wire dialects are seen alike. ``snapshot`` joins that record with the live state only the service
holds (in-flight counts, pause state, backpressure now) into one JSON document the page polls.

Memory is bounded whatever the traffic: at most ``max_streams`` streams are remembered (least
recently active forgotten first, ended ones before live ones), each with its last ``max_points``
fragments, and the last ``max_errors`` errors (messages cut to ``MAX_MESSAGE`` characters). Only a
``stream:ready`` opens a record: a refused fragment naming a made-up stream (no session behind it)
must not push real streams out. Refused connections are counted, not listed, so a flood of
unauthenticated connects cannot push real errors out either.

The document stays small, because the page polls it every second and it is serialised on the event
loop: every stream goes as a summary, and only the selected one (``?stream=``, else the first
listed) carries its points. Its size is bounded by the limits above (test_console_feed checks it).
"""

from __future__ import annotations

import time
from collections import OrderedDict, deque
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from livedub.runtime.errors import ErrorCode
from livedub.runtime.protocol import events as ev
from livedub.runtime.protocol.dialects.base import Outbound
from livedub.runtime.server.connections import default_stream_id

if TYPE_CHECKING:
    from livedub.runtime.server.service import DubbingService

#: An error message longer than this is cut: some quote the offending payload.
MAX_MESSAGE = 300


@dataclass(slots=True)
class _Stream:
    sid: str
    stream_id: str
    dialect: str
    session_id: str | None = None
    source_language: str | None = None
    target_language: str | None = None
    voice_profile: str | None = None
    engines: dict[str, str] | None = None
    started_at: float = field(default_factory=time.time)
    ended_at: float | None = None
    backpressure: str = "none"
    points: deque[dict[str, Any]] = field(default_factory=deque)
    complete: dict[str, Any] | None = None


class ConsoleFeed:
    def __init__(self, max_streams: int = 64, max_points: int = 240, max_errors: int = 100) -> None:
        self.max_streams = max_streams
        self.max_points = max_points
        self._streams: OrderedDict[tuple[str, str], _Stream] = OrderedDict()
        self._errors: deque[dict[str, Any]] = deque(maxlen=max_errors)
        self.auth_refusals = 0
        self.last_auth_refusal_at: float | None = None
        self.started_at = time.time()

    # --- recording ---------------------------------------------------------------------------------

    def observe(self, sid: str, message: Outbound, dialect: str) -> None:
        """Record one outbound message (the sender and the namespace call this for every one)."""
        if isinstance(message, ev.StreamReady):
            opened = self._open(sid, message.stream_id, dialect)
            opened.session_id = message.session_id
            opened.source_language = message.source_language
            opened.target_language = message.target_language
            opened.voice_profile = message.voice_profile
            opened.engines = message.engines
        elif isinstance(message, ev.FragmentProcessed):
            if message.error is not None:  # a failed fragment (a deadline, an engine) is an error to see too
                self._error(sid, message.error.model_dump(exclude_none=True), message.stream_id, message.fragment_id)
            stream = self._known(sid, message.stream_id)
            if stream is None:
                return
            timings = message.stage_timings.model_dump(exclude_none=True) if message.stage_timings else {}
            stream.points.append(
                {
                    "sequence_number": message.sequence_number,
                    "fragment_id": message.fragment_id,
                    "status": message.status,
                    "processing_time_ms": message.processing_time_ms,
                    "stage_timings": timings,
                    "error_code": message.error.code if message.error else None,
                    "at": time.time(),
                }
            )
            while len(stream.points) > self.max_points:
                stream.points.popleft()
        elif isinstance(message, ev.Backpressure):
            if (stream := self._known(sid, message.stream_id)) is not None:
                stream.backpressure = str(message.severity)
        elif isinstance(message, ev.StreamComplete):
            if (stream := self._known(sid, message.stream_id)) is not None:
                stream.ended_at = time.time()
                stream.complete = message.model_dump(exclude_none=True)
        elif isinstance(message, ev.ErrorEvent):
            if message.code == ErrorCode.AUTH_FAILED and message.event == "connect":
                self.auth_refusals += 1
                self.last_auth_refusal_at = time.time()
            else:
                self._error(sid, message.model_dump(exclude_none=True), message.stream_id, message.fragment_id)

    def _error(self, sid: str, error: dict[str, Any], stream_id: str | None, fragment_id: str | None) -> None:
        error["message"] = str(error.get("message", ""))[:MAX_MESSAGE]
        self._errors.append(
            {"at": time.time(), "sid": sid, "stream_id": stream_id, "fragment_id": fragment_id, **error}
        )

    def _known(self, sid: str, stream_id: str | None) -> _Stream | None:
        """The record of a stream that a ``stream:ready`` opened, marked as the most recently active."""
        key = (sid, stream_id or default_stream_id(sid))
        stream = self._streams.get(key)
        if stream is not None:
            self._streams.move_to_end(key)
        return stream

    def _open(self, sid: str, stream_id: str | None, dialect: str) -> _Stream:
        key = (sid, stream_id or default_stream_id(sid))
        stream = self._streams.get(key)
        if stream is None or stream.ended_at is not None:
            # A stream:init after stream:end on the same id is a new run: start its record afresh.
            stream = _Stream(sid, key[1], dialect)
            self._streams[key] = stream
        self._streams.move_to_end(key)
        while len(self._streams) > self.max_streams:
            ended = next((k for k, s in self._streams.items() if s.ended_at is not None), None)
            self._streams.pop(ended if ended is not None else next(iter(self._streams)))
        return stream

    # --- reading -----------------------------------------------------------------------------------

    def snapshot(self, service: DubbingService, selected: str | None = None) -> dict[str, Any]:
        """The page's document: runtime state, a summary of every remembered stream (live ones
        first) with the points of the ``selected`` one only (else the first listed), errors."""
        live = {
            (sid, stream_id): (conn, session)
            for sid, conn in service.connections.items()
            for stream_id, session in conn.streams.items()
        }
        streams = []
        for key, stream in reversed(self._streams.items()):
            conn_session = live.get(key)
            entry: dict[str, Any] = {
                "stream_id": stream.stream_id,
                "session_id": stream.session_id,
                "dialect": stream.dialect,
                "source_language": stream.source_language,
                "target_language": stream.target_language,
                "voice_profile": stream.voice_profile,
                "engines": stream.engines,
                "started_at": stream.started_at,
                "ended_at": stream.ended_at,
                "backpressure": stream.backpressure,
                "live": conn_session is not None,
                "point_count": len(stream.points),
                "last_processing_time_ms": stream.points[-1]["processing_time_ms"] if stream.points else None,
                "complete": stream.complete,
            }
            if conn_session is not None:
                conn, session = conn_session
                stats = session.stats
                entry.update(
                    worker_id=conn.worker_id,
                    state=str(session.state),
                    inflight=session.inflight,
                    backpressure=str(session.backpressure.current),
                    stats={
                        "received": stats.received,
                        "delivered": stats.delivered,
                        "success": stats.success,
                        "partial": stats.partial,
                        "failed": stats.failed,
                        "avg_processing_time_ms": stats.avg_processing_time_ms,
                        "deadline_misses": stats.deadline_misses,
                    },
                )
            else:
                entry["state"] = "ended" if stream.ended_at is not None else "disconnected"
            streams.append((entry, stream))
        streams.sort(key=lambda pair: not pair[0]["live"])  # stable: most recent first within each group
        chosen = next((pair for pair in streams if pair[0]["stream_id"] == selected), streams[0] if streams else None)
        if chosen is not None:
            chosen[0]["points"] = list(chosen[1].points)
        settings = service.settings
        return {
            "now": time.time(),
            "started_at": self.started_at,
            "ready": service.ready,
            "draining": service.draining,
            "placement": service.placement.state(),
            "engines": service.engines.describe() if service.engines else None,
            "streams_live": service.stream_count(),
            "connections": len(service.connections),
            "inflight": service.inflight_total,
            "max_pod_inflight": settings.max_pod_inflight,
            "max_inflight": settings.max_inflight,
            "backpressure_thresholds": {
                "low": settings.backpressure_threshold_low,
                "medium": settings.backpressure_threshold_medium,
                "high": settings.backpressure_threshold_high,
                "critical": settings.backpressure_threshold_critical,
            },
            "streams": [entry for entry, _ in streams],
            "errors": list(reversed(self._errors)),
            "auth_refusals": self.auth_refusals,
            "last_auth_refusal_at": self.last_auth_refusal_at,
        }
