"""The caption feed's bookkeeping (server/caption_feed.py): clock, order, bounds, ends."""

from __future__ import annotations

import asyncio

from livedub.runtime.protocol import events as ev
from livedub.runtime.server.caption_feed import CaptionFeed


def ready(stream_id: str = "s") -> ev.StreamReady:
    return ev.StreamReady(
        session_id="x", max_inflight=4, capabilities=[], stream_id=stream_id, source_language="en", target_language="es"
    )


def processed(
    sequence: int, duration_ms: int | None = 6000, stream_id: str = "s", cues: bool = True
) -> ev.FragmentProcessed:
    cue = ev.CaptionCue(start_ms=100, end_ms=900, text=f"t{sequence}", speaker="S1")
    return ev.FragmentProcessed(
        fragment_id=f"f{sequence}",
        status="success" if duration_ms else "failed",
        stream_id=stream_id,
        sequence_number=sequence,
        metadata=ev.DurationMetadata(
            original_duration_ms=duration_ms, dubbed_duration_ms=duration_ms, duration_variance_percent=0, speed_ratio=1
        )
        if duration_ms
        else None,
        captions=ev.Captions(source_language="en", target_language="es", source=[cue], target=[cue]) if cues else None,
    )


def drain(queue: asyncio.Queue) -> list:
    out = []
    while not queue.empty():
        out.append(queue.get_nowait())
    return out


async def test_cues_move_onto_the_streams_clock_in_order():
    feed = CaptionFeed()
    assert feed.subscribe("s") is None  # unknown stream
    feed.observe("sid", ready(), "guide")
    sub = feed.subscribe("s")
    assert sub is not None
    feed.observe("sid", processed(0, 6000), "guide")
    feed.observe("sid", processed(1, 4500, cues=False), "guide")  # no captions: moves the clock only
    feed.observe("sid", processed(2, None), "guide")  # failed before decoding: no duration
    feed.observe("sid", processed(3, 6000), "guide")
    feed.observe("sid", processed(0, 6000, stream_id="other"), "guide")  # another stream: not ours
    events = drain(sub.queue)
    assert [(name, data["sequence_number"], data["offset_ms"]) for name, data in events] == [
        ("cues", 0, 0),
        ("cues", 2, 10_500),
        ("cues", 3, 10_500),
    ]
    assert events[0][1]["source"][0] == {"start_ms": 100, "end_ms": 900, "text": "t0", "speaker": "S1"}
    assert events[2][1]["target"][0]["start_ms"] == 10_600
    feed.observe(
        "sid",
        ev.StreamComplete(
            stream_id="s", session_id="x", fragments_received=4, fragments_delivered=4, success=3, partial=0, failed=1
        ),
        "guide",
    )
    assert drain(sub.queue) == [("end", {"stream_id": "s", "reason": "complete"})]
    assert not feed.live("s") and feed.subscribe("s") is None


async def test_a_full_queue_drops_that_subscriber_only_and_a_restart_resets_the_clock():
    feed = CaptionFeed(max_queue=3)
    feed.observe("sid", ready(), "guide")
    slow, fast = feed.subscribe("s"), feed.subscribe("s")
    assert slow is not None and fast is not None
    for sequence in range(10):
        feed.observe("sid", processed(sequence), "guide")
        drain(fast.queue)
        assert feed.buffered() <= 3 + 3
    assert slow.dropped.is_set() and not fast.dropped.is_set()
    assert feed.dropped == 1 and feed.subscribers("s") == 1 and slow.queue.qsize() == 3
    feed.observe("sid", ready(), "guide")  # stream:init again on the same id: a new run
    feed.observe("sid", processed(0), "guide")
    assert drain(fast.queue)[0][1]["offset_ms"] == 0


async def test_remembered_streams_are_bounded_and_forgotten_ones_end():
    feed = CaptionFeed(max_streams=2)
    feed.observe("sid", ready("a"), "guide")
    first = feed.subscribe("a")
    assert first is not None
    feed.observe("sid", ready("b"), "guide")
    feed.observe("sid", ready("c"), "guide")
    assert not feed.live("a") and feed.live("b") and feed.live("c")
    assert drain(first.queue) == [("end", {"stream_id": "a", "reason": "forgotten"})]
    sub = feed.subscribe("b")
    assert sub is not None
    feed.forget("b", "disconnected")
    assert drain(sub.queue) == [("end", {"stream_id": "b", "reason": "disconnected"})]


async def test_a_retried_fragment_moves_the_clock_once():
    """A failed fragment may be retried under its id and sequence number; both answers are the same
    6 s of the programme, so the retry gets the first answer's offset and the clock moves once."""
    feed = CaptionFeed()
    feed.observe("sid", ready(), "guide")
    sub = feed.subscribe("s")
    assert sub is not None
    feed.observe("sid", processed(0), "guide")
    failed = processed(1, None, cues=False)  # e.g. a TIMEOUT after decoding: no metadata, but the input's length
    failed.set_input_duration(6000)
    feed.observe("sid", failed, "guide")
    feed.observe("sid", processed(1), "guide")  # the retry, dubbed this time
    feed.observe("sid", processed(2), "guide")
    events = drain(sub.queue)
    assert [(data["sequence_number"], data["offset_ms"]) for _, data in events] == [
        (0, 0),
        (1, 6000),
        (2, 12000),
    ]
