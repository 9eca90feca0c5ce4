"""Connections and the streams each one carries: registration and routing of events to streams."""

from __future__ import annotations

from dataclasses import dataclass, field

from livedub.runtime.errors import DubbingError, ErrorCode, Stage
from livedub.runtime.session.session import StreamSession


def default_stream_id(sid: str) -> str:
    """The id of a stream that got none from its payload or header: one per connection."""
    return f"{sid}-stream"


@dataclass(slots=True)
class Connection:
    sid: str
    worker_id: str | None
    header_stream_id: str | None
    streams: dict[str, StreamSession] = field(default_factory=dict)
    #: Stream initialised with no id from header, auth or payload: id-less events route to it.
    anonymous_stream: str | None = None
    #: Dialect of the last stream:init, for answers that belong to no stream (protocol/dialects).
    dialect: str = "guide"

    def find_stream(self, stream_id: str | None) -> StreamSession:
        """The stream an event names; an id-less event goes to the connection's only stream.

        A named stream must exist on this connection: an event naming another stream is refused,
        never dubbed into whichever stream happens to be here.
        """
        if stream_id is not None:
            if stream_id in self.streams:
                return self.streams[stream_id]
        elif len(self.streams) == 1:
            return next(iter(self.streams.values()))
        elif self.header_stream_id in self.streams:
            return self.streams[self.header_stream_id]
        wanted = f"stream '{stream_id}'" if stream_id else "no stream"
        raise DubbingError(
            ErrorCode.STREAM_NOT_INITIALIZED,
            f"{wanted} is initialised on this connection; send stream:init first",
            stage=Stage.SESSION,
        )

    def remove(self, session: StreamSession) -> bool:
        """Forget ``session`` if it is still this connection's stream of that id."""
        if self.streams.get(session.stream_id) is not session:
            return False
        del self.streams[session.stream_id]
        if self.anonymous_stream == session.stream_id:
            self.anonymous_stream = None
        return True
