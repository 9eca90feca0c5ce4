"""Spread load after a scale-up: which overloaded pods shed how many live streams (pure, no I/O).

Streams stay on the pod they reached, so after a scale-up the old pods keep their load while the new
ones take only what arrives next. Each tick the operator asks an overloaded pod to shed the
excess: it marks the pod with ``dubbing.livedub.io/shed-streams``; the runtime reads the mark from
its downward-API annotations file, stops taking new streams (readiness 503) and asks exactly that
many of its streams to move at their next fragment boundary (``STREAM_MOVE``: no fragment lost or
reordered); the Service routes their reconnections to the pods with room.

A pod sheds when it falls behind (in flight per stream above ``overload_in_flight_per_stream``: its
streams cost more than the target assumed), whatever its streams, or when its streams exceed a mark
set by ``rebalance_above``: ``capacity`` (the default) ``streams_per_pod`` — maxStreamsPerPod was
lowered, or a race admitted more — so a live broadcast on a pod that keeps up is left alone (each
move is a reconnect the viewer may notice); ``target``, ``target * (1 + tolerance)``, which spreads
load after every scale-up at the price of many more moves. Either way it sheds down to the target,
not to the mark, so one stream more does not mark it again (hysteresis).

What it sheds is bounded three ways, so a pool does not churn: by the room up to their target of the
pods below the band, ``target * (1 - tolerance)`` (pods that answered with models loaded, not
draining, not shedding, not behind themselves; room that waiting streams will take and that streams
already asked to move will take is not room), by ``max_per_tick`` streams asked per tick across the
pool, and by one request per pod at a time. A pod that is draining is never marked,
and a mark comes off when the pod starts draining, when it has shed what it was asked (its streams are
down by that many from when it was marked, or at the target anyway: streams that ended count), or after
``timeout_s`` (the kubelet refreshes the annotations file within about a minute; a runtime too old to
read the mark never sheds).

The request lives on the pod (the mark's value: how many, from how many, since when), never in the
operator's memory, so a restarted or failed-over operator carries on where it was.
"""

import math
from collections.abc import Mapping
from dataclasses import dataclass, field

from livedub.operator.scaling.decide import Policy


@dataclass(frozen=True)
class ShedMark:
    streams: int  # how many to move
    start: float  # the pod's streams when it was marked
    since: float  # epoch seconds

    def value(self) -> str:
        # The runtime reads only the leading count; a new value is a new request.
        return f"{self.streams};from={self.start:g};at={self.since:.0f}"

    @classmethod
    def parse(cls, value: str) -> "ShedMark | None":
        """None for a value this operator did not write (e.g. a bare count set by hand)."""
        head, *rest = value.split(";")
        fields = dict(part.split("=", 1) for part in rest if "=" in part)
        try:
            return cls(int(head), float(fields["from"]), float(fields["at"]))
        except (KeyError, ValueError):
            return None

    def remaining(self, streams: float) -> float:
        """Streams still to move, given the pod's streams now."""
        return max(0.0, streams - (self.start - self.streams))


@dataclass(frozen=True)
class PodLoad:
    streams: float
    in_flight: float = 0.0
    draining: bool = False
    #: The pod's shed mark: a parsed one, or None. ``marked`` is True for any mark, parsed or not.
    mark: ShedMark | None = None
    marked: bool = False
    #: False for a marked pod that did not answer: its mark can only time out.
    known: bool = True


@dataclass(frozen=True)
class RebalancePlan:
    marks: dict[str, ShedMark] = field(default_factory=dict)  # new requests to write
    clears: dict[str, str] = field(default_factory=dict)  # marks to take off, with why
    room: float = 0.0  # streams the pods with room can take, after what is already promised

    @property
    def asked(self) -> int:
        return sum(m.streams for m in self.marks.values())


def _behind(load: PodLoad, policy: Policy) -> float:
    """In flight per stream over the limit (0: keeping up)."""
    if load.streams <= 0:
        return 0.0
    per_stream = load.in_flight / load.streams
    return per_stream if per_stream > policy.overload_in_flight_per_stream else 0.0


def shed_above(policy: Policy) -> float:
    """Streams a pod that keeps up may carry before it is asked to shed."""
    if policy.rebalance_above == "capacity":
        return float(policy.streams_per_pod)
    return policy.target_per_pod * (1 + policy.tolerance)


def excess(load: PodLoad, policy: Policy) -> int:
    """Streams this pod should shed to be back at its target (0: none)."""
    target = policy.target_per_pod
    over = math.ceil(load.streams - target - 1e-9) if load.streams > shed_above(policy) + 1e-9 else 0
    behind = _behind(load, policy)
    if behind:
        # Its streams cost behind / limit times what they should: keep the share it keeps up with.
        keep = load.streams * policy.overload_in_flight_per_stream / behind
        over = max(over, math.ceil(load.streams - keep - 1e-9), 1)
    return max(0, int(over))


def _clear_reason(load: PodLoad | None, mark: ShedMark | None, policy: Policy, now: float, timeout_s: float) -> str:
    if load is not None and load.draining:
        return "the pod is draining"
    if mark is None:
        return "not a mark this operator wrote"
    if (
        load is not None
        and load.known
        and (load.streams <= mark.start - mark.streams or load.streams <= policy.target_per_pod)
    ):
        return "done"
    if now - mark.since >= timeout_s:
        return "timeout"
    return ""


def plan(
    loads: Mapping[str, PodLoad | None],
    policy: Policy,
    *,
    pending: float,
    now: float,
    max_per_tick: int,
    timeout_s: float,
) -> RebalancePlan:
    """``loads``: every serving pod of the pool (None: did not answer, or models not loaded);
    ``pending``: streams waiting for a place (they take room first)."""
    clears: dict[str, str] = {}
    active: dict[str, ShedMark] = {}
    for pod, load in sorted(loads.items()):
        if load is None or not load.marked:
            continue
        why = _clear_reason(load, load.mark, policy, now, timeout_s)
        if why:
            clears[pod] = why
        elif load.mark is not None:
            active[pod] = load.mark
    answered = {pod: load for pod, load in loads.items() if load is not None and load.known}
    promised = sum(
        mark.remaining(answered[pod].streams) if pod in answered else mark.streams for pod, mark in active.items()
    )
    # Receivers are pods below the band, not just below the target: moved streams reconnect through
    # the Service, which spreads them over every pod with room, so pods near the target take some too.
    low = policy.target_per_pod * (1 - policy.tolerance)
    receivers = {
        pod: load
        for pod, load in answered.items()
        if not load.draining and not load.marked and not _behind(load, policy) and load.streams <= low
    }
    room: float = sum(math.floor(policy.target_per_pod - load.streams + 1e-9) for load in receivers.values())
    room = max(0.0, room - math.ceil(pending - 1e-9) - promised)
    budget = min(float(max_per_tick), room)
    donors = sorted(
        (
            (excess(load, policy), pod)
            for pod, load in answered.items()
            if not load.draining and (not load.marked or pod in clears) and pod not in receivers
        ),
        key=lambda item: (-item[0], item[1]),
    )
    marks: dict[str, ShedMark] = {}
    for want, pod in donors:
        n = int(min(want, budget))
        if n < 1 or (pod in clears and clears[pod] != "done"):
            # A pod whose last request just timed out or was cleared waits a tick: its runtime may
            # still be shedding, and the next tick sees what that did.
            continue
        marks[pod] = ShedMark(n, answered[pod].streams, now)
        budget -= n
    # A donor marked again this tick keeps its (new) mark: it is not cleared.
    for pod in marks:
        clears.pop(pod, None)
    return RebalancePlan(marks=marks, clears=clears, room=room)
