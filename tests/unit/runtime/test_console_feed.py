"""The console's feed stays bounded whatever the traffic, and keeps what the page needs."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest

from livedub.runtime.config import Settings
from livedub.runtime.errors import DubbingError, ErrorCode, Stage
from livedub.runtime.metrics import Metrics
from livedub.runtime.protocol import events as ev
from livedub.runtime.protocol.dialects.base import Outbound
from livedub.runtime.server.console_feed import MAX_MESSAGE, ConsoleFeed
from livedub.runtime.server.service import DubbingService


async def _nowhere(sid: str, message: Outbound, dialect: str) -> None:
    """The edge's send: the snapshot never sends anything."""


@pytest.fixture
def service() -> Iterator[DubbingService]:
    service = DubbingService(Settings(_env_file=None), Metrics(), _nowhere)
    yield service
    service.executor.shutdown()


def _ready(stream_id: str) -> ev.StreamReady:
    return ev.StreamReady(
        session_id="s", max_inflight=3, capabilities=[], stream_id=stream_id, source_language="en", target_language="de"
    )


def _result(stream_id: str, sequence: int) -> ev.FragmentProcessed:
    return ev.FragmentProcessed(
        fragment_id=f"f{sequence}",
        status="success",
        stream_id=stream_id,
        sequence_number=sequence,
        processing_time_ms=900,
    )


def test_points_errors_and_streams_are_bounded() -> None:
    feed = ConsoleFeed(max_streams=4, max_points=10, max_errors=5)
    for n in range(50):
        feed.observe("sid", _ready(f"s{n}"), "guide")
        for sequence in range(30):
            feed.observe("sid", _result(f"s{n}", sequence), "guide")
        feed.observe("sid", ev.ErrorEvent(code="INVALID_PAYLOAD", message="bad", retryable=False), "worker")
    assert len(feed._streams) == 4
    assert all(len(s.points) == 10 for s in feed._streams.values())
    last = feed._streams[("sid", "s49")]
    assert [p["sequence_number"] for p in last.points] == list(range(20, 30))
    assert (last.source_language, last.target_language, last.dialect) == ("en", "de", "guide")
    assert len(feed._errors) == 5


def test_ended_streams_are_forgotten_before_live_ones() -> None:
    feed = ConsoleFeed(max_streams=2)
    feed.observe("a", _ready("live"), "guide")
    feed.observe("b", _ready("over"), "worker")
    complete = ev.StreamComplete(
        stream_id="over", session_id="s", fragments_received=0, fragments_delivered=0, success=0, partial=0, failed=0
    )
    feed.observe("b", complete, "worker")
    feed.observe("c", _ready("new"), "guide")
    assert set(feed._streams) == {("a", "live"), ("c", "new")}


def test_a_new_run_on_an_ended_stream_id_starts_a_fresh_record() -> None:
    feed = ConsoleFeed()
    feed.observe("a", _ready("x"), "guide")
    feed.observe("a", _result("x", 0), "guide")
    complete = ev.StreamComplete(
        stream_id="x", session_id="s", fragments_received=1, fragments_delivered=1, success=1, partial=0, failed=0
    )
    feed.observe("a", complete, "guide")
    feed.observe("a", _ready("x"), "guide")
    record = feed._streams[("a", "x")]
    assert record.ended_at is None and not record.points


def _full_feed() -> ConsoleFeed:
    """Every bound filled: 64 streams of 240 points with every stage timed, 100 long errors."""
    feed = ConsoleFeed()
    for n in range(feed.max_streams):
        stream_id = f"stream-{n:03d}-" + "x" * 110  # identifiers may be 128 characters long
        feed.observe(f"sid-{n}", _ready(stream_id), "guide")
        for sequence in range(feed.max_points):
            result = _result(stream_id, sequence)
            result.stage_timings = ev.StageTimings(
                asr_ms=1234, translation_ms=2345, tts_ms=3456, duration_match_ms=456, queue_ms=12
            )
            feed.observe(f"sid-{n}", result, "guide")
    for _ in range(200):
        error = DubbingError(ErrorCode.INVALID_PAYLOAD, "m" * 5000, stage=Stage.PROTOCOL)
        feed.observe("sid-0", ev.ErrorEvent.from_error(error, event="fragment:data", stream_id="s" * 128), "guide")
    return feed


def test_the_snapshot_of_a_full_feed_is_small_and_carries_the_selected_streams_points(
    service: DubbingService,
) -> None:
    feed = _full_feed()
    chosen = next(iter(feed._streams.values())).stream_id
    document = feed.snapshot(service, chosen)
    size = len(json.dumps(document))
    # Every stream's points would be ~4.8 MB; summaries plus one stream's points stay under 256 kB.
    assert size < 256 * 1024, size
    with_points = [s for s in document["streams"] if "points" in s]
    assert [s["stream_id"] for s in with_points] == [chosen]
    assert len(with_points[0]["points"]) == feed.max_points
    assert all(s["point_count"] == feed.max_points for s in document["streams"])
    assert len(document["streams"]) == feed.max_streams
    assert all(len(e["message"]) == MAX_MESSAGE for e in document["errors"])
    # Nothing asked for (or a stream no longer remembered): the first listed one carries the points.
    for selected in (None, "gone"):
        first = feed.snapshot(service, selected)["streams"]
        assert "points" in first[0] and not any("points" in s for s in first[1:])


def test_a_refused_fragment_on_a_made_up_stream_opens_no_record() -> None:
    feed = ConsoleFeed(max_streams=2)
    feed.observe("a", _ready("real-1"), "guide")
    feed.observe("b", _ready("real-2"), "guide")
    error = ev.ErrorInfo(code="INVALID_PAYLOAD", message="bad", retryable=False, stage="protocol")
    for n in range(10):  # what service.reject sends for a fragment salvaged from an invalid payload
        failed = ev.FragmentProcessed(fragment_id=f"f{n}", status="failed", stream_id=f"made-up-{n}", error=error)
        feed.observe("c", failed, "guide")
        pressure = ev.Backpressure(
            stream_id=f"made-up-{n}", severity="high", action="slow_down", current_inflight=3, max_inflight=3
        )
        feed.observe("c", pressure, "guide")
    assert set(feed._streams) == {("a", "real-1"), ("b", "real-2")}
    assert len(feed._errors) == 10  # the refusals are still listed as errors


def test_refused_connections_are_counted_not_listed() -> None:
    feed = ConsoleFeed(max_errors=5)
    feed.observe("a", ev.ErrorEvent(code="INVALID_PAYLOAD", message="a real one", retryable=False), "guide")
    refused = DubbingError(ErrorCode.AUTH_FAILED, "missing token", stage=Stage.PROTOCOL)
    for n in range(50):
        feed.observe(f"x{n}", ev.ErrorEvent.from_error(refused, event="connect"), "guide")
    assert [e["message"] for e in feed._errors] == ["a real one"]
    assert feed.auth_refusals == 50 and feed.last_auth_refusal_at is not None
