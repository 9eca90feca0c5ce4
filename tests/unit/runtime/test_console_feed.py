"""The console's feed stays bounded whatever the traffic, and keeps what the page needs."""

from __future__ import annotations

from livedub.runtime.protocol import events as ev
from livedub.runtime.server.console_feed import ConsoleFeed


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
