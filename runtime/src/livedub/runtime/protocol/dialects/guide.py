"""The quick-start guide's dialect (section 10): the typed messages are its wire shapes already."""

from __future__ import annotations

from typing import Any

from livedub.runtime.protocol import events as ev
from livedub.runtime.protocol.dialects.base import Dialect, Outbound

EVENTS: dict[type, str] = {
    ev.StreamReady: "stream:ready",
    ev.FragmentAck: "fragment:ack",
    ev.FragmentProcessed: "fragment:processed",
    ev.Backpressure: "backpressure",
    ev.ErrorEvent: "error",
    ev.StreamComplete: "stream:complete",
    ev.StreamState: "stream:state",
}


class GuideDialect(Dialect):
    name = "guide"

    def stream_init(self, payload: Any) -> ev.StreamInit:
        return ev.StreamInit.model_validate(payload if payload is not None else {})

    def fragment(self, payload: Any) -> ev.FragmentData:
        return ev.FragmentData.model_validate(payload)

    def encode(self, message: Outbound) -> tuple[str, dict[str, Any]]:
        return EVENTS[type(message)], message.wire()
