"""How many runtime pods a pool should have: pure functions, no clock, no I/O.

Load is fragments in flight plus fragments queued, summed over the pods that answered. The pool aims
for ``target`` per pod. Around that target a tolerance band (hysteresis) keeps small wobbles from
moving replicas; scale-up and scale-down have separate cooldowns because adding a GPU pod is cheap
compared with a live stream falling behind, while removing one drains streams. Pods that did not
answer are counted as exactly at target: they neither justify a scale-up nor, since their load is
unknown, allow a scale-down (a scale-down then waits until every pod answers).
"""

import math
from dataclasses import dataclass
from typing import Literal

Action = Literal["up", "down", "hold"]


@dataclass(frozen=True)
class Policy:
    min_replicas: int
    max_replicas: int
    target_per_pod: int
    tolerance: float = 0.1
    scale_up_cooldown_s: float = 30.0
    scale_down_cooldown_s: float = 300.0
    scale_down_step: int = 1


@dataclass(frozen=True)
class Observation:
    current_replicas: int
    pods_scraped: int
    pods_unreachable: int
    in_flight: float
    queue_depth: float
    backpressure_events: int = 0


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


def decide(obs: Observation, policy: Policy, history: History, now: float) -> Decision:
    cur = obs.current_replicas
    if cur < policy.min_replicas:
        reason = f"below minReplicas ({policy.min_replicas})"
        return Decision("up", cur, policy.min_replicas, "BelowMinReplicas", reason)
    if cur > policy.max_replicas:
        reason = f"above maxReplicas ({policy.max_replicas})"
        return Decision("down", cur, policy.max_replicas, "AboveMaxReplicas", reason)
    if obs.pods_scraped + obs.pods_unreachable == 0:
        return _hold(obs, "NoReadyPods", "no ready pods to measure")

    target = policy.target_per_pod
    load = obs.in_flight + obs.queue_depth + obs.pods_unreachable * target
    ratio = load / (cur * target) if cur else math.inf
    wanted = math.ceil(load / target)
    summary = f"load {load:g} over {cur} pods (target {target}/pod, ratio {ratio:.2f})"

    up_reasons = []
    if wanted > cur and ratio > 1 + policy.tolerance:
        up_reasons.append(summary)
    if obs.backpressure_events:
        up_reasons.append(f"{obs.backpressure_events} backpressure events")
        wanted = max(wanted, cur + 1)
    if up_reasons:
        desired = min(policy.max_replicas, wanted)
        reason = "; ".join(up_reasons)
        if desired <= cur:
            return _hold(obs, "AtMaxReplicas", f"{reason}; already at maxReplicas ({policy.max_replicas})")
        wait = policy.scale_up_cooldown_s - _since(now, history.last_scale_up)
        if wait > 0:
            return _hold(obs, "ScaleUpCooldown", f"{reason}; scale-up cooldown, {wait:.0f}s left")
        return Decision("up", cur, desired, "ScaledUp", reason)

    if wanted < cur and ratio < 1 - policy.tolerance:
        if obs.pods_unreachable:
            reason = f"{summary}; {obs.pods_unreachable} pods unreachable, not scaling down"
            return _hold(obs, "PodsUnreachable", reason)
        desired = max(policy.min_replicas, wanted, cur - policy.scale_down_step)
        if desired >= cur:
            return _hold(obs, "AtMinReplicas", f"{summary}; at minReplicas ({policy.min_replicas})")
        # Measured from the last change either way: a pool that just grew must not shrink at once.
        last_change = max(history.last_scale_up or -math.inf, history.last_scale_down or -math.inf)
        wait = policy.scale_down_cooldown_s - _since(now, None if last_change == -math.inf else last_change)
        if wait > 0:
            return _hold(obs, "ScaleDownCooldown", f"{summary}; scale-down cooldown, {wait:.0f}s left")
        return Decision("down", cur, desired, "ScaledDown", summary)

    return _hold(obs, "WithinTolerance", f"{summary}; within tolerance")
