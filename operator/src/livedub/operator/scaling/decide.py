"""How many runtime pods a pool should have: pure functions, no clock, no I/O.

The signal is demand, not backlog (issue 12). A pod serves at most ``streams_per_pod`` live streams
(the runtime refuses the next ``stream:init`` with a retryable ``POD_FULL``), and the pool aims for
``target_utilization`` of that, which leaves room for streams that arrive while a new pod starts.
Demand is the streams the pods serve (``sts_streams_active``) plus the streams waiting for a place:
a refused worker reconnects after ``retry_after_s`` (the refusal says so), so a waiting stream is
refused about once per ``retry_after_s`` and ``refusals * retry_after_s / interval`` estimates how
many wait. That figure does not saturate: the old signal (in flight + queued) stopped growing at
``MAX_POD_INFLIGHT`` and counted queued fragments twice (``sts_fragments_in_flight`` includes them).

Fragments only override: when the pods fall behind (in flight per stream above
``overload_in_flight_per_stream`` — a stream sending one 6 s fragment every 6 s has about
latency / 6 s in flight — new backpressure events at the chosen severity, or fragments rejected for
capacity), a stream costs more than the target assumed, and the pool grows by one pod more than the
streams ask for, once the pods it already asked for are ready.

Around the target a tolerance band keeps wobbles from moving replicas; scale-up and scale-down have
separate cooldowns. Pods that did not answer count as exactly at target: they neither justify a
scale-up nor, since their load is unknown, allow a scale-down. With ``min_replicas`` 0 a pool at zero
has nothing to measure: it leaves zero on an activation request (a connection attempt or a pending
stream reported to the operator).
"""

import math
from dataclasses import dataclass
from typing import Literal

Action = Literal["up", "down", "hold"]


@dataclass(frozen=True)
class Policy:
    min_replicas: int
    max_replicas: int
    # Capacity: the most live streams one pod serves in real time (the runtime's MAX_POD_STREAMS).
    streams_per_pod: int
    target_utilization: float = 0.8
    tolerance: float = 0.1
    scale_up_cooldown_s: float = 30.0
    scale_down_cooldown_s: float = 300.0
    scale_down_step: int = 1
    # What a refused worker waits before it reconnects (the refusal's retry_after_ms).
    retry_after_s: float = 10.0
    overload_in_flight_per_stream: float = 2.0
    # What set min_replicas: the pool's own minReplicas, or an active warm-floor schedule.
    floor_source: str = "minReplicas"
    # When a pod is asked to shed live streams (scaling/rebalance.py): past its capacity or behind
    # ("capacity": a live broadcast is not moved off a pod that keeps up), or past the target's band.
    rebalance_above: Literal["capacity", "target"] = "capacity"

    @property
    def target_per_pod(self) -> float:
        return self.streams_per_pod * self.target_utilization


@dataclass(frozen=True)
class Observation:
    current_replicas: int
    pods_scraped: int
    pods_unreachable: int
    streams: float = 0.0
    # Stream refusals (pod full) since the previous scrape, summed over pods seen both times, and
    # the seconds between the two scrapes (0: no previous scrape, so no estimate yet).
    streams_refused: float = 0.0
    interval_s: float = 0.0
    # Fragments in flight, queued ones included; queue_depth is reported, never added to it.
    in_flight: float = 0.0
    queue_depth: float = 0.0
    backpressure_events: int = 0
    overload_rejections: int = 0
    activation_requested: bool = False

    @property
    def pods_ready(self) -> int:
        return self.pods_scraped + self.pods_unreachable

    @property
    def pods_starting(self) -> int:
        return max(0, self.current_replicas - self.pods_ready)


@dataclass(frozen=True)
class History:
    """Epoch seconds of the last changes this operator made (None: never)."""

    last_scale_up: float | None = None
    last_scale_down: float | None = None


@dataclass(frozen=True)
class Decision:
    action: Action
    from_replicas: int
    to_replicas: int
    # A short CamelCase code (Event reason, condition reason); ``reason`` is the human sentence.
    code: str
    reason: str


def _since(now: float, then: float | None) -> float:
    return math.inf if then is None else now - then


def _hold(obs: Observation, code: str, reason: str) -> Decision:
    return Decision("hold", obs.current_replicas, obs.current_replicas, code, reason)


def pending_streams(obs: Observation, policy: Policy) -> float:
    """Streams waiting for a place, from the refusal rate (each waits ``retry_after_s`` per retry)."""
    if obs.interval_s <= 0 or obs.streams_refused <= 0:
        return 0.0
    return obs.streams_refused * policy.retry_after_s / obs.interval_s


def demand(obs: Observation, policy: Policy) -> float:
    """Streams the pool must place: served, waiting, and unreachable pods counted as at target."""
    return obs.streams + pending_streams(obs, policy) + obs.pods_unreachable * policy.target_per_pod


def wanted_replicas(obs: Observation, policy: Policy) -> int:
    """Pods the demand asks for at the target (before tolerance, cooldowns and bounds)."""
    return math.ceil(demand(obs, policy) / policy.target_per_pod - 1e-9)


def overload_reasons(obs: Observation, policy: Policy) -> list[str]:
    reasons = []
    if obs.streams > 0 and obs.in_flight / obs.streams > policy.overload_in_flight_per_stream:
        reasons.append(f"{obs.in_flight / obs.streams:.1f} fragments in flight per stream")
    if obs.backpressure_events:
        reasons.append(f"{obs.backpressure_events} backpressure events")
    if obs.overload_rejections:
        reasons.append(f"{obs.overload_rejections} fragments rejected for capacity")
    return reasons


def _from_zero(obs: Observation, policy: Policy) -> Decision:
    if obs.activation_requested and policy.max_replicas >= 1:
        return Decision("up", 0, 1, "Activated", "activation requested (connection attempt or pending stream)")
    return _hold(obs, "ScaledToZero", "no replicas and no activation request")


def decide(obs: Observation, policy: Policy, history: History, now: float) -> Decision:
    cur = obs.current_replicas
    if cur < policy.min_replicas:
        reason = f"below {policy.floor_source} ({policy.min_replicas})"
        return Decision("up", cur, policy.min_replicas, "BelowMinReplicas", reason)
    if cur > policy.max_replicas:
        reason = f"above maxReplicas ({policy.max_replicas})"
        return Decision("down", cur, policy.max_replicas, "AboveMaxReplicas", reason)
    if cur == 0:
        return _from_zero(obs, policy)
    if obs.pods_ready == 0:
        return _hold(obs, "NoReadyPods", "no ready pods to measure")

    target = policy.target_per_pod
    pending = pending_streams(obs, policy)
    ratio = demand(obs, policy) / (cur * target)
    wanted = wanted_replicas(obs, policy)
    summary = (
        f"{obs.streams:g} streams + {pending:.0f} waiting over {cur} pods (target {target:g}/pod, ratio {ratio:.2f})"
    )

    up_reasons = []
    if wanted > cur and (ratio > 1 + policy.tolerance or pending > 0):
        up_reasons.append(summary)
    overload = overload_reasons(obs, policy)
    if overload:
        up_reasons.extend(overload)
        # One more pod than the streams ask for, but only once the pods asked for are ready:
        # a pod still starting will take load off the others, and the signal persists until it does.
        if obs.pods_starting == 0:
            wanted = max(wanted, cur + 1)
    if up_reasons:
        desired = min(policy.max_replicas, wanted)
        reason = "; ".join(up_reasons)
        if desired <= cur:
            if cur >= policy.max_replicas:
                return _hold(obs, "AtMaxReplicas", f"{reason}; already at maxReplicas ({policy.max_replicas})")
            return _hold(obs, "WaitingForPods", f"{reason}; {obs.pods_starting} pods still starting")
        wait = policy.scale_up_cooldown_s - _since(now, history.last_scale_up)
        if wait > 0:
            return _hold(obs, "ScaleUpCooldown", f"{reason}; scale-up cooldown, {wait:.0f}s left")
        return Decision("up", cur, desired, "ScaledUp", reason)

    if wanted < cur and ratio < 1 - policy.tolerance:
        if pending > 0:
            # Room in total but refusals somewhere: removing a pod would refuse more.
            return _hold(obs, "StreamsWaiting", f"{summary}; streams waiting, not scaling down")
        if obs.pods_unreachable:
            reason = f"{summary}; {obs.pods_unreachable} pods unreachable, not scaling down"
            return _hold(obs, "PodsUnreachable", reason)
        desired = max(policy.min_replicas, wanted, cur - policy.scale_down_step)
        if desired >= cur:
            return _hold(obs, "AtMinReplicas", f"{summary}; at {policy.floor_source} ({policy.min_replicas})")
        # Measured from the last change either way: a pool that just grew must not shrink at once.
        last_change = max(history.last_scale_up or -math.inf, history.last_scale_down or -math.inf)
        wait = policy.scale_down_cooldown_s - _since(now, None if last_change == -math.inf else last_change)
        if wait > 0:
            return _hold(obs, "ScaleDownCooldown", f"{summary}; scale-down cooldown, {wait:.0f}s left")
        return Decision("down", cur, desired, "ScaledDown", summary)

    return _hold(obs, "WithinTolerance", f"{summary}; within tolerance")
