"""The Socket.IO edge: parse each event in its dialect, hand it to the service, serialise the answers.

Thin on purpose (kopf's and crate's handlers are too): no dubbing logic lives here, and no payload
shape either — each stream's dialect (``protocol/dialects``) owns those. Each handler's return value
doubles as the Socket.IO acknowledgement, so clients that pass a callback get the same payload the
event carries. A handler never raises: python-socketio would send no ack and the client would wait
forever.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any

import socketio
from pydantic import ValidationError

from livedub.runtime.errors import DubbingError, ErrorCode, Stage
from livedub.runtime.logs import fragment_id_var, stream_id_var
from livedub.runtime.protocol import events as ev
from livedub.runtime.protocol.dialects import DIALECTS, Dialect, detect
from livedub.runtime.protocol.dialects.base import Outbound
from livedub.runtime.server.auth import TokenAuthenticator
from livedub.runtime.server.service import DubbingService, Send

log = logging.getLogger(__name__)


#: The payload path's limit on ids (``protocol.events.Identifier``), applied to the headers too.
_MAX_ID_CHARS = 128


#: Told of every typed message before it is sent (the console's feed): ``observe(sid, message, dialect)``.
Observer = Callable[[str, Outbound, str], None]


def _ignore(sid: str, message: Outbound, dialect: str) -> None:
    pass


def make_sender(sio: socketio.AsyncServer, observe: Observer = _ignore) -> Send:
    """The service's ``send``: serialise a typed message in the stream's dialect and emit it."""

    async def send(sid: str, message: Outbound, dialect: str) -> None:
        observe(sid, message, dialect)
        event, payload = DIALECTS[dialect].encode(message)
        await sio.emit(event, payload, to=sid)

    return send


def _salvage(data: Any) -> tuple[str | None, str | None, int | None]:
    """fragment_id, stream_id and sequence_number of a payload that failed validation, where usable,
    so its rejection still names them (and keeps its place in the stream's order)."""
    if not isinstance(data, dict):
        return None, None, None

    def ident(key: str) -> str | None:
        value = data.get(key)
        return value if isinstance(value, str) and 0 < len(value) <= _MAX_ID_CHARS else None

    sequence = data.get("sequence_number")
    usable = isinstance(sequence, int) and not isinstance(sequence, bool) and 0 <= sequence <= 2**53
    return ident("fragment_id"), ident("stream_id"), sequence if usable else None


def _header_or_auth(environ: dict[str, Any], auth: Any, header: str, *keys: str) -> str | None:
    """Connection metadata from an HTTP header, or from the ``auth`` payload (browsers cannot set
    headers on the WebSocket transport). Too long is refused, as ``stream:init`` refuses it: a cut
    id could silently merge two streams whose ids share their first 128 characters."""
    value = environ.get("HTTP_" + header.upper().replace("-", "_"))
    if not value and isinstance(auth, dict):
        for key in (header, *keys):
            if isinstance(auth.get(key), str):
                value = auth[key]
                break
    value = value.strip() if isinstance(value, str) else None
    if value and len(value) > _MAX_ID_CHARS:
        raise DubbingError(
            ErrorCode.INVALID_PAYLOAD,
            f"{header} is {len(value)} characters, over the {_MAX_ID_CHARS} allowed",
            stage=Stage.PROTOCOL,
        )
    return value or None


class Refused(socketio.exceptions.ConnectionRefusedError):  # type: ignore[misc]
    """A refused connection, sent as the documented ``{code, message, retryable}`` object.

    python-socketio turns a single argument into ``{"message": str(arg)}``, so a dict arrived as its
    Python repr inside a string (issue 11, item 9). ``error_args`` is what it sends in the
    ``connect_error`` packet; ``data`` repeats the object because socket.io-client exposes only
    ``err.message`` and ``err.data``.
    """

    def __init__(self, error: DubbingError) -> None:
        super().__init__(error.message)
        info = {"code": str(error.code), "message": error.message, "retryable": error.retryable}
        self.error_args = {**info, "data": info}


class DubbingNamespace(socketio.AsyncNamespace):  # type: ignore[misc]
    def __init__(
        self,
        service: DubbingService,
        authenticator: TokenAuthenticator,
        namespace: str = "/",
        observe: Observer = _ignore,
    ) -> None:
        super().__init__(namespace)
        self.service = service
        self.authenticator = authenticator
        self.observe = observe

    async def on_connect(self, sid: str, environ: dict[str, Any], auth: Any = None) -> None:
        refusal = self.authenticator.check(environ, auth)
        if refusal is not None:
            log.warning("connection refused", extra={"sid": sid, "reason": refusal, "peer": environ.get("REMOTE_ADDR")})
            error = DubbingError(ErrorCode.AUTH_FAILED, refusal, stage=Stage.PROTOCOL)
            self.service.metrics.count_error(error)
            self.observe(sid, ev.ErrorEvent.from_error(error, event="connect"), "guide")
            raise Refused(error)
        try:
            if self.service.draining:  # it would be closed in a moment: send it to another replica now
                raise DubbingError(
                    ErrorCode.SHUTTING_DOWN, "server is draining; reconnect to another replica", stage=Stage.SESSION
                )
            stream_id = _header_or_auth(environ, auth, "X-Stream-ID", "stream_id", "streamId")
            worker_id = _header_or_auth(environ, auth, "X-Worker-ID", "worker_id", "workerId")
            self.service.connect(sid, worker_id, stream_id)
        except DubbingError as exc:
            log.info("connection refused", extra={"sid": sid, "code": str(exc.code), "reason": exc.message})
            self.service.metrics.count_error(exc)
            raise Refused(exc) from None
        log.info("client connected", extra={"sid": sid, "worker_id": worker_id, "stream_id": stream_id})

    async def on_disconnect(self, sid: str, reason: Any = None) -> None:
        await self.service.disconnect(sid)

    async def _fail(
        self, sid: str, event: str, error: DubbingError, dialect: Dialect, stream_id: str | None = None
    ) -> dict[str, Any]:
        message = ev.ErrorEvent.from_error(error, event=event, stream_id=stream_id)
        self.observe(sid, message, dialect.name)
        name, payload = dialect.encode(message)
        self.service.metrics.count_error(error)
        await self.emit(name, payload, to=sid)
        return {"status": "error", "error": payload}

    async def _answer(self, sid: str, message: Outbound, dialect: Dialect) -> dict[str, Any]:
        self.observe(sid, message, dialect.name)
        name, payload = dialect.encode(message)
        await self.emit(name, payload, to=sid)
        return payload

    def _known(self, sid: str) -> bool:
        return sid in self.service.connections

    async def on_stream_init(self, sid: str, data: Any = None, *_: Any) -> dict[str, Any]:  # "stream:init"
        dialect = detect(data)
        stream_id = _salvage(data)[1]
        try:
            init = dialect.stream_init(data)
            stream_id_var.set(init.stream_id)
            ready = self.service.stream_init(sid, init, dialect.name)
        except ValidationError as exc:
            return await self._fail(sid, "stream:init", ev.invalid_payload("stream:init", exc), dialect, stream_id)
        except DubbingError as exc:
            return await self._fail(sid, "stream:init", exc, dialect, stream_id)
        return await self._answer(sid, ready, dialect)

    async def on_fragment_data(self, sid: str, data: Any = None, *_: Any) -> dict[str, Any]:  # "fragment:data"
        try:
            fragment = detect(data).fragment(data)  # parsed by its own shape, answered in its stream's dialect
        except ValidationError as exc:
            fragment_id, stream_id, sequence = _salvage(data)
            error = ev.invalid_payload("fragment:data", exc)
            ack = await self.service.reject(
                sid, error, None, fragment_id=fragment_id, stream_id=stream_id, sequence_number=sequence
            )
            return DIALECTS[self.service.dialect_of(sid, stream_id)].encode(ack)[1]
        fragment_id_var.set(fragment.fragment_id)
        ack = await self.service.fragment(sid, fragment)
        return DIALECTS[self.service.dialect_of(sid, ack.stream_id)].encode(ack)[1]

    async def _control(
        self, sid: str, event: str, data: Any, action: Callable[[ev.StreamControl], Awaitable[Outbound]]
    ) -> dict[str, Any]:
        """Parse a ``stream:*`` control payload, run ``action``, send its reply in the stream's dialect."""
        stream_id = _salvage(data)[1]
        dialect = DIALECTS[self.service.dialect_of(sid, stream_id)]
        try:
            reply = await action(dialect.control(data))
        except ValidationError as exc:
            return await self._fail(sid, event, ev.invalid_payload(event, exc), dialect, stream_id)
        except DubbingError as exc:
            return await self._fail(sid, event, exc, dialect, stream_id)
        return await self._answer(sid, reply, dialect)

    async def _set_paused(self, sid: str, control: ev.StreamControl, paused: bool) -> ev.StreamState:
        return self.service.set_paused(sid, control.stream_id, paused)

    async def on_stream_pause(self, sid: str, data: Any = None, *_: Any) -> dict[str, Any]:
        return await self._control(sid, "stream:pause", data, lambda c: self._set_paused(sid, c, True))

    async def on_stream_resume(self, sid: str, data: Any = None, *_: Any) -> dict[str, Any]:
        return await self._control(sid, "stream:resume", data, lambda c: self._set_paused(sid, c, False))

    async def on_stream_end(self, sid: str, data: Any = None, *_: Any) -> dict[str, Any]:
        async def end(control: ev.StreamControl) -> ev.StreamComplete:
            return await self.service.stream_end(sid, control.stream_id)

        return await self._control(sid, "stream:end", data, end)

    async def trigger_event(self, event: str, *args: Any) -> Any:
        """Map the protocol's ``a:b`` event names onto ``on_a_b`` methods; answer unknown events."""
        handler_name = "on_" + event.replace(":", "_")
        sid: str | None = args[0] if args else None  # python-socketio passes the sid first
        if event in ("connect", "disconnect"):
            return await super().trigger_event(event, *args)
        if hasattr(self, handler_name):
            if sid is None or not self._known(sid):
                return None  # connect was refused or already cleaned up
            try:
                return await super().trigger_event(event.replace(":", "_"), *args)
            except Exception:  # a bug must still answer the client, not leave it waiting
                log.exception("handler crashed", extra={"event": event})
                error = DubbingError(ErrorCode.INTERNAL, f"internal error handling {event}", stage=Stage.PROTOCOL)
                return await self._fail(sid, event, error, DIALECTS[self.service.dialect_of(sid)])
        if sid is not None and self._known(sid):
            error = DubbingError(ErrorCode.INVALID_PAYLOAD, f"unknown event '{event}'", stage=Stage.PROTOCOL)
            return await self._fail(sid, event, error, DIALECTS[self.service.dialect_of(sid)])
        return None
