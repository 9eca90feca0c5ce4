"""The interface every wire dialect implements: inbound payloads to typed events, typed messages out."""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any

from livedub.runtime.protocol import events as ev

#: A typed message the service sends; the dialect decides its event name and payload.
Outbound = (
    ev.StreamReady
    | ev.FragmentAck
    | ev.FragmentProcessed
    | ev.Backpressure
    | ev.ErrorEvent
    | ev.StreamComplete
    | ev.StreamState
)


class Dialect(ABC):
    name: str

    def recognises(self, payload: dict[str, Any]) -> bool:
        """Whether a ``stream:init`` or ``fragment:data`` payload is written in this dialect (by shape)."""
        return False

    # --- inbound: raise pydantic.ValidationError on a bad payload ---------------------------------

    @abstractmethod
    def stream_init(self, payload: Any) -> ev.StreamInit: ...

    @abstractmethod
    def fragment(self, payload: Any) -> ev.FragmentData: ...

    def control(self, payload: Any) -> ev.StreamControl:
        return ev.StreamControl.model_validate(payload if isinstance(payload, dict) else {})

    # --- outbound -----------------------------------------------------------------------------------

    @abstractmethod
    def encode(self, message: Outbound) -> tuple[str, dict[str, Any]]:
        """The event name and payload for ``message``."""
