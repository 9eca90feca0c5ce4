"""The live caption feed: each delivered fragment's cues, fanned out to the subscribers of its stream.

Like the console's feed it watches the typed messages the runtime sends (``observe`` gets every
outbound message, in either dialect), so the dubbing code does not know it exists and a subscriber
sees exactly what the stream's worker was sent, in the order it was sent: ``fragment:processed``
leaves in sequence order, and ``observe`` runs just before each emit.

A cue event carries both languages and the speaker label, with times on the stream's clock:
``offset_ms`` (where the fragment starts in the stream) plus the cue's time within the fragment.
The clock is the sum of the input durations of the fragments delivered before (``metadata
.original_duration_ms``, or for a failed result the decoded input's, which the worker plays as the
original), once per sequence number (a retried fragment is the same stretch of the programme); a
fragment refused before its audio was decoded has no duration and does not move it.

Memory is bounded per subscriber, not just in total: each has a queue of ``max_queue`` events.
``observe`` never waits (it runs inside the sender): a subscriber whose queue is full is too slow
for a live feed and is dropped on the spot, its queue no longer filled, and its connection told so
and closed (server/captions.py). Streams remembered are those live now, at most ``max_streams``.
"""

from __future__ import annotations

import asyncio
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any

from livedub.runtime.protocol import events as ev
from livedub.runtime.protocol.dialects.base import Outbound
from livedub.runtime.server.connections import default_stream_id

#: What a subscriber's queue holds: (SSE event name, JSON-able data).
Event = tuple[str, dict[str, Any]]


@dataclass(eq=False, slots=True)
class Subscriber:
    stream_id: str
    queue: asyncio.Queue[Event]
    #: Set when the queue overflowed: the connection must stop and say so.
    dropped: asyncio.Event = field(default_factory=asyncio.Event)


@dataclass(slots=True)
class _Stream:
    stream_id: str
    source_language: str | None = None
    target_language: str | None = None
    offset_ms: int = 0
    #: The last fragment on the clock (sequence number, its offset): a retry of it is not counted again.
    last: tuple[int, int] | None = None
    subscribers: set[Subscriber] = field(default_factory=set)


class CaptionFeed:
    def __init__(self, max_queue: int = 256, max_streams: int = 4096) -> None:
        self.max_queue = max_queue
        self.max_streams = max_streams
        self._streams: OrderedDict[str, _Stream] = OrderedDict()
        #: Subscribers dropped for being slow, since start (for tests and the log).
        self.dropped = 0

    # --- the sender's side ---------------------------------------------------------------------

    def observe(self, sid: str, message: Outbound, dialect: str) -> None:
        if isinstance(message, ev.StreamReady):
            key = message.stream_id or default_stream_id(sid)
            stream = self._streams.pop(key, None) or _Stream(key)
            stream.source_language, stream.target_language = message.source_language, message.target_language
            stream.offset_ms, stream.last = 0, None  # a new run of the stream starts its clock afresh
            self._streams[key] = stream
            while len(self._streams) > self.max_streams:
                _, oldest = self._streams.popitem(last=False)
                self._end(oldest, "forgotten")
        elif isinstance(message, ev.FragmentProcessed):
            current = self._streams.get(message.stream_id or default_stream_id(sid))
            if current is None:
                return
            offset = current.offset_ms
            sequence = message.sequence_number
            if current.last is not None and sequence == current.last[0]:
                offset = current.last[1]  # a retry (answers come in sequence order): the same place
            elif message.input_duration_ms is not None:
                current.offset_ms += message.input_duration_ms
                current.last = None if sequence is None else (sequence, offset)
            if message.captions is not None and current.subscribers:
                self._publish(current, ("cues", _cues(current.stream_id, offset, message, message.captions)))
        elif isinstance(message, ev.StreamComplete):
            self.forget(message.stream_id, "complete")

    def _publish(self, stream: _Stream, event: Event) -> None:
        for subscriber in list(stream.subscribers):
            try:
                subscriber.queue.put_nowait(event)
            except asyncio.QueueFull:
                # Too slow for a live feed: keeping its backlog would grow memory without bound.
                stream.subscribers.discard(subscriber)
                subscriber.dropped.set()
                self.dropped += 1

    def _end(self, stream: _Stream, reason: str) -> None:
        self._publish(stream, ("end", {"stream_id": stream.stream_id, "reason": reason}))
        stream.subscribers.clear()

    # --- the endpoint's side -------------------------------------------------------------------

    def live(self, stream_id: str) -> bool:
        return stream_id in self._streams

    def subscribe(self, stream_id: str) -> Subscriber | None:
        """A new subscriber to a live stream's cues, or None for a stream not live here."""
        stream = self._streams.get(stream_id)
        if stream is None:
            return None
        subscriber = Subscriber(stream_id, asyncio.Queue(self.max_queue))
        stream.subscribers.add(subscriber)
        return subscriber

    def unsubscribe(self, subscriber: Subscriber) -> None:
        stream = self._streams.get(subscriber.stream_id)
        if stream is not None:
            stream.subscribers.discard(subscriber)

    def forget(self, stream_id: str, reason: str) -> None:
        """End a stream the feed never saw end (its connection went away without ``stream:end``)."""
        if stream_id in self._streams:
            self._end(self._streams.pop(stream_id), reason)

    def subscribers(self, stream_id: str) -> int:
        stream = self._streams.get(stream_id)
        return len(stream.subscribers) if stream is not None else 0

    def buffered(self) -> int:
        """Events waiting in every subscriber's queue (at most ``max_queue`` per subscriber)."""
        return sum(s.queue.qsize() for stream in self._streams.values() for s in stream.subscribers)


def _cues(stream_id: str, offset_ms: int, message: ev.FragmentProcessed, captions: ev.Captions) -> dict[str, Any]:
    def absolute(cues: list[ev.CaptionCue]) -> list[dict[str, Any]]:
        return [
            {"start_ms": offset_ms + c.start_ms, "end_ms": offset_ms + c.end_ms, "text": c.text, "speaker": c.speaker}
            for c in cues
        ]

    return {
        "stream_id": stream_id,
        "fragment_id": message.fragment_id,
        "sequence_number": message.sequence_number,
        "offset_ms": offset_ms,
        "duration_ms": message.metadata.original_duration_ms if message.metadata else None,
        "speaker": message.speaker,
        "source_language": captions.source_language,
        "target_language": captions.target_language,
        "source_timing": captions.source_timing,
        "target_timing": captions.target_timing,
        "source": absolute(captions.source),
        "target": absolute(captions.target),
    }
