"""Shed live streams when the operator asks (rebalance after a scale-up): which, and for how long.

The operator marks an overloaded pod ``dubbing.livedub.io/shed-streams: "<n>;..."``
(``livedub.operator.scaling.rebalance``); the mark arrives through the same downward-API annotations
file as the draining mark (``server/placement.py``). On a new value this pod:

1. stops taking new streams (``placement`` turns ``shedding``: ``POD_FULL`` with reason ``shedding``,
   ``/ready/streams`` 503), so the Service routes the moved streams' reconnections to pods with room;
2. asks exactly ``n`` live streams to move at their next fragment boundary (``server/move.py``:
   ``STREAM_MOVE``, nothing lost or reordered);
3. takes new streams again once those ``n`` have left (moved, ended or disconnected), or after
   ``SHED_TIMEOUT_S`` whatever happened, or when the operator takes the mark off (the streams not
   yet told then stay).

Which streams: those with nothing in flight first — their boundary is now, so they are told at once
and none of their fragments is refused and sent twice — then the most recently connected, which
have the least history on this pod (speaker profiles, translation context) to lose. A value already
handled is not handled again: the operator writes a new value for each request, and the kubelet may
show an old one for a minute after the operator changed it.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field

from livedub.contract.env import SHED_STREAMS_ANNOTATION

#: The most a request keeps this pod from taking new streams: a few fragments plus the close of
#: told connections (server/move.py), well below the operator's own timeout.
SHED_TIMEOUT_S = 60.0

Key = tuple[str, str]  # (sid, stream_id)


def annotation_value(annotations: str, key: str = SHED_STREAMS_ANNOTATION) -> str | None:
    """The value of ``key`` in a downward-API annotations file (``key="value"`` lines, Go-quoted)."""
    for line in annotations.splitlines():
        name, sep, value = line.partition("=")
        if sep and name.strip() == key:
            value = value.strip()
            if len(value) >= 2 and value[0] == value[-1] == '"':
                value = value[1:-1].replace('\\"', '"').replace("\\\\", "\\")
            return value
    return None


def shed_count(value: str) -> int:
    """The number of streams a shed value asks for (its leading integer; 0 when unreadable)."""
    head = value.split(";", 1)[0].strip()
    return int(head) if head.isdigit() else 0


@dataclass(frozen=True)
class Candidate:
    key: Key
    inflight: int
    order: int  # connection order on this pod: higher is more recent


def choose(candidates: Iterable[Candidate], n: int) -> list[Key]:
    """``n`` streams: nothing in flight first, then the most recently connected."""
    ranked = sorted(candidates, key=lambda c: (c.inflight > 0, -c.order))
    return [c.key for c in ranked[: max(0, n)]]


@dataclass
class ShedRequest:
    value: str
    keys: set[Key]
    started: float = field(default_factory=time.monotonic)


class Shedder:
    """One shed request at a time; ``active`` while its streams are still here."""

    def __init__(self, live: Callable[[], Iterable[Key]], clock: Callable[[], float] = time.monotonic) -> None:
        self._live = live
        self._clock = clock
        self.handled: str | None = None  # the last value acted on
        self.request: ShedRequest | None = None

    def start(self, value: str, candidates: Sequence[Candidate]) -> list[Key]:
        """A new value: the streams to ask to move (none for a value already handled)."""
        if value == self.handled:
            return []
        self.handled = value
        keys = choose(candidates, shed_count(value))
        self.request = ShedRequest(value, set(keys), self._clock()) if keys else None
        return keys

    def stop(self) -> set[Key]:
        """The operator took the mark off: the streams of the request, to stop moving those not yet told."""
        keys = self.request.keys if self.request is not None else set()
        self.request = None
        return keys

    @property
    def active(self) -> bool:
        request = self.request
        if request is None:
            return False
        if self._clock() - request.started >= SHED_TIMEOUT_S:
            self.request = None
            return False
        request.keys &= set(self._live())
        if not request.keys:
            self.request = None
        return self.request is not None
