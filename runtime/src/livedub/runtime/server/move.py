"""Ask live streams to move to another pod, at a fragment boundary (the gentle scale-down's last step).

When the operator marks this pod for removal (``placement`` turns ``leaving``), every live stream is
asked to move, without losing or reordering a fragment:

1. From then on a new ``fragment:data`` of the stream is refused ``STREAM_MOVE`` (retryable, with
   ``retry_after_ms``): ack ``rejected`` plus its failed result, in the stream's order. The worker
   keeps such a fragment and sends it again on its new connection.
2. Once every fragment accepted before has been delivered (nothing in flight: the boundary), the
   stream gets an ``error`` ``STREAM_MOVE`` naming it (retryable, ``retry_after_ms``): reconnect, send
   ``stream:init`` with the same ``stream_id``, and go on from the first fragment not yet answered.
   This pod is not Ready any more, so the Service sends the new connection to another pod.
3. A connection whose streams have all been told is dropped ``CLOSE_AFTER_S`` later as a lost
   transport (``engineio_closer``: no Engine.IO ``CLOSE`` packet, which a client would take as a final
   disconnect). A worker that only logs errors — the public reference worker does — then reconnects
   through its Socket.IO client's own reconnection (python-socketio and JS clients, both transports).

Everything runs on the event loop; nothing here blocks.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Iterable

import socketio

from livedub.runtime.errors import DubbingError, ErrorCode, Stage

log = logging.getLogger(__name__)

#: What the move asks a worker to wait before reconnecting: at once, jittered (the Service already
#: routes new connections elsewhere), so refused fragments are late by a reconnect, not by seconds.
RETRY_AFTER_MS = 500
#: How long a told connection stays open for a worker that moves by itself.
CLOSE_AFTER_S = 5.0

Key = tuple[str, str]  # (sid, stream_id)


def move_error(stream_id: str, *, told: bool) -> DubbingError:
    if told:
        message = (
            f"stream '{stream_id}' must move: this pod is leaving the pool; every fragment sent before was "
            "answered. Reconnect, send stream:init with the same stream_id, and send again every fragment "
            "refused STREAM_MOVE"
        )
    else:
        message = f"stream '{stream_id}' is moving to another pod: send this fragment again after reconnecting"
    return DubbingError(
        ErrorCode.STREAM_MOVE, message, stage=Stage.SESSION, retryable=True, retry_after_ms=RETRY_AFTER_MS
    )


class StreamMover:
    def __init__(
        self,
        *,
        notify: Callable[[str, str, DubbingError], Awaitable[None]],
        close: Callable[[str], Awaitable[None]],
        streams_of: Callable[[str], Iterable[str]],
        on_told: Callable[[str], None] = lambda reason: None,
    ) -> None:
        self._notify, self._close, self._streams_of = notify, close, streams_of
        self._on_told = on_told  # counts streams asked to move, by reason
        #: Streams asked to move, with why: "drain" (the pod leaves) or "rebalance" (it sheds).
        self.moving: dict[Key, str] = {}
        self.told: set[Key] = set()
        self._closing: dict[str, asyncio.Task[None]] = {}  # idle closes after POD_FULL
        self._moving_close: dict[str, asyncio.Task[None]] = {}  # closes of told connections

    def refuses(self, sid: str, stream_id: str) -> bool:
        return (sid, stream_id) in self.moving

    def request(self, keys: Iterable[Key], reason: str = "drain") -> None:
        for key in keys:
            if key not in self.told:
                self.moving[key] = reason

    def cancel(self, keys: Iterable[Key] | None = None) -> None:
        """The pod stays after all (the operator cancelled the drain, or took its shed request off):
        streams not yet told (of ``keys``; None: all) go on here. Those already told were asked to
        reconnect and their connections are closing: they move."""
        cancelled = set(self.moving) if keys is None else set(keys)
        for key in cancelled - self.told:
            self.moving.pop(key, None)

    async def boundary(self, sid: str, stream_id: str, inflight: int) -> None:
        """Called when a stream may be between fragments; tells it to move once nothing is in flight."""
        key = (sid, stream_id)
        if key not in self.moving or key in self.told or inflight:
            return
        self.told.add(key)
        reason = self.moving[key]
        self._on_told(reason)
        log.info("stream asked to move", extra={"sid": sid, "stream_id": stream_id, "reason": reason})
        await self._notify(sid, stream_id, move_error(stream_id, told=True))
        self._close_if_all_told(sid)

    def ended(self, sid: str, stream_id: str) -> None:
        """A stream ended (``stream:end``): the others on its connection may all be told by now."""
        self.moving.pop((sid, stream_id), None)
        self.told.discard((sid, stream_id))
        self._close_if_all_told(sid)

    def _close_if_all_told(self, sid: str) -> None:
        # Checked wherever a connection's streams or their state change (a told one, an ended one,
        # a pending idle close that found a stream): a told connection must be closed some time.
        streams = list(self._streams_of(sid))
        if streams and all((sid, s) in self.told for s in streams) and sid not in self._moving_close:
            self._moving_close[sid] = asyncio.create_task(self._close_later(sid))

    async def _close_later(self, sid: str) -> None:
        await asyncio.sleep(CLOSE_AFTER_S)
        await self._close(sid)

    def close_if_idle_later(self, sid: str, delay_s: float) -> None:
        """After a ``POD_FULL`` refusal on a connection with no stream: the connection is bound to this
        full pod, so a retry on it could only be refused again (or wait for a stream here to end).
        Closed at ``retry_after``, a worker's Socket.IO reconnection opens a new connection, which the
        Service routes to a pod with room; a stream admitted here meanwhile keeps it open."""
        if sid not in self._closing:
            self._closing[sid] = asyncio.create_task(self._close_idle(sid, delay_s))

    async def _close_idle(self, sid: str, delay_s: float) -> None:
        await asyncio.sleep(delay_s)
        self._closing.pop(sid, None)
        if not list(self._streams_of(sid)):
            await self._close(sid)
        else:
            self._close_if_all_told(sid)

    def forget(self, sid: str) -> None:
        """The connection is gone: drop its state (a pending close is moot)."""
        self.moving = {k: r for k, r in self.moving.items() if k[0] != sid}
        self.told = {k for k in self.told if k[0] != sid}
        for pending in (self._closing, self._moving_close):
            task = pending.pop(sid, None)
            if task is not None and task is not asyncio.current_task():
                task.cancel()

    def close(self) -> None:
        for task in [*self._closing.values(), *self._moving_close.values()]:
            task.cancel()


def engineio_closer(sio: socketio.AsyncServer, namespace: str = "/") -> Callable[[str], Awaitable[None]]:
    """Drop a Socket.IO connection by its namespace sid the way a lost connection looks to its client.

    Not ``sio.eio.disconnect``: that sends an Engine.IO ``CLOSE`` packet, which python-engineio's
    client (and the JS client: "io server disconnect") takes as a final, server-side disconnect and
    does not reconnect after. Here the socket is closed without the packet (``abort``) and its send
    queue is woken with the end marker: on websocket the writer then closes the WebSocket, which the
    client reads as a broken transport; on long-polling the pending GET ends and the next one gets
    "Invalid session" (HTTP 400). Both are transport errors, after which a client reconnects.
    Packets queued before (the move notice) are sent first: the marker goes in behind them.
    """

    async def close(sid: str) -> None:
        eio_sid = sio.manager.eio_sid_from_sid(sid, namespace)
        if eio_sid is not None:
            await drop_transport(sio, eio_sid)

    return close


async def drop_transport(sio: socketio.AsyncServer, eio_sid: str) -> None:
    """Close one Engine.IO connection as a lost transport (see ``engineio_closer``), after its queue."""
    socket = sio.eio.sockets.get(eio_sid)
    if socket is None or socket.closed:
        return
    await socket.close(wait=False, abort=True)  # runs the server's disconnect handlers
    await socket.queue.put(None)
