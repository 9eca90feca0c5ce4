"""Gentle scale-down: which pods leave, and when the Deployment may lose them (pure, no I/O).

A scale-down used to lower replicas at once, and the ReplicaSet's victim dropped its live streams.
Now a decision to remove ``k`` pods starts a drain instead: the ``k`` least-loaded pods that answered
are marked (the runtime reads the mark through its downward-API file, stops admitting new streams,
leaves the Service's endpoints through its readiness probe and asks its live streams to move at
their next fragment boundary). Replicas drop only once every marked pod reports no stream, or the
grace period has passed; then pod-deletion-cost makes exactly those pods the ReplicaSet's victims.
If demand grows back while pods drain — beyond the tolerance over the pods that would remain, or a
scale-up — the marks come off: a drained pod is capacity that is already warm, cheaper and faster
than a new one. Starting a drain counts as a scale-down and undoing one as a scale-up for the
cooldowns (``lastScaleDownTime``/``lastScaleUpTime``), so demand wobbling by a stream cannot
start and cancel drains, moving live streams each time.

The drain's state lives in the pool's status (``status.drain``) and on the pods (the mark), never
in the operator's memory, so a restarted or failed-over operator picks it up where it was.
"""

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from livedub.operator.scaling.decide import Decision, Observation, Policy, demand, wanted_replicas

StepKind = Literal["none", "start", "wait", "finish", "cancel"]

#: Written as the drained pods' pod-deletion-cost when replicas drop: below any pod's stream count,
#: so among pods of equal readiness the ReplicaSet removes these first.
DRAINED_DELETION_COST = -1000


@dataclass(frozen=True)
class DrainState:
    pods: tuple[str, ...]
    since: float  # epoch seconds when the pods were marked

    def as_status(self, since_iso: str) -> dict[str, Any]:
        return {"pods": list(self.pods), "since": since_iso}


@dataclass(frozen=True)
class DrainStep:
    kind: StepKind
    pods: tuple[str, ...] = ()
    # The replicas to write: the decision's for "none" and "cancel", the reduced count for "finish".
    to_replicas: int | None = None
    code: str = ""
    reason: str = ""


def least_loaded(streams: Mapping[str, float | None], count: int) -> tuple[str, ...]:
    """``count`` pods with the fewest live streams among those that answered (name breaks ties)."""
    known = sorted((s, pod) for pod, s in streams.items() if s is not None)
    return tuple(sorted(pod for _, pod in known[:count]))


def _left(streams: Mapping[str, float | None], pods: Sequence[str]) -> tuple[float, int]:
    """Streams still on the drained pods, and how many of them did not answer."""
    values = [streams.get(p) for p in pods]
    return sum(v for v in values if v is not None), sum(v is None for v in values)


def plan(
    decision: Decision,
    obs: Observation,
    policy: Policy,
    state: DrainState | None,
    streams: Mapping[str, float | None],
    *,
    existing: Sequence[str],
    now: float,
    grace_s: float,
) -> DrainStep:
    """What to do this tick. ``streams``: live streams per serving pod (None: did not answer);
    ``existing``: every pod of the pool that is not being deleted."""
    cur = obs.current_replicas
    if state is None:
        if decision.action != "down" or decision.code != "ScaledDown":
            # Bounds (above maxReplicas) and everything else apply as decided.
            return DrainStep("none", to_replicas=decision.to_replicas, code=decision.code, reason=decision.reason)
        pods = least_loaded(streams, decision.from_replicas - decision.to_replicas)
        if not pods:
            return DrainStep("none", to_replicas=cur, code="NoPodToDrain", reason="no pod answered; not scaling down")
        left, _ = _left(streams, pods)
        reason = f"{decision.reason}; draining {', '.join(pods)} ({left:g} streams to end or move)"
        return DrainStep("start", pods, code="DrainStarted", reason=reason)

    pods = tuple(p for p in state.pods if p in existing)
    if not pods:
        return DrainStep("cancel", state.pods, cur, "DrainAbandoned", "the drained pods are gone already")
    remaining = cur - len(pods)
    wanted = wanted_replicas(obs, policy)
    # The same tolerance band as a scale-up: a drain started at "wanted <= remaining" and undone at
    # "wanted > remaining" would flap with one stream either way, moving real streams each time.
    over = demand(obs, policy) / (remaining * policy.target_per_pod) if remaining > 0 else math.inf
    if decision.action == "up" or over > 1 + policy.tolerance or remaining < policy.min_replicas:
        to = decision.to_replicas if decision.action == "up" else cur
        why = f"demand wants {wanted} pods ({over:.2f} of target over the {remaining} that would remain)"
        if remaining < policy.min_replicas:
            why = f"minReplicas is {policy.min_replicas}, {remaining} would remain"
        return DrainStep("cancel", pods, to, "DrainCancelled", f"{why}: {', '.join(pods)} take new streams again")
    left, silent = _left(streams, pods)
    waited = now - state.since
    if left == 0 and silent == 0:
        return DrainStep("finish", pods, remaining, "ScaledDown", f"{', '.join(pods)} drained, no stream left")
    if waited >= grace_s:
        reason = f"grace of {grace_s:g}s passed with {left:g} streams left on {', '.join(pods)}"
        return DrainStep("finish", pods, remaining, "ScaledDown", reason)
    unknown = f", {silent} not answering" if silent else ""
    reason = f"{left:g} streams left on {', '.join(pods)}{unknown}; {grace_s - waited:.0f}s of grace left"
    return DrainStep("wait", pods, code="Draining", reason=reason)


def outcome(decision: Decision, step: DrainStep) -> Decision:
    """The decision as carried out this tick, for status, Events and the operator's metrics."""
    cur = decision.from_replicas
    if step.kind == "none":
        return decision
    if step.kind in ("start", "wait"):
        return Decision("hold", cur, cur, step.code, step.reason)
    to = cur if step.to_replicas is None else step.to_replicas
    if step.kind == "finish":
        return Decision("down", cur, to, step.code, step.reason)
    reason = f"{step.reason}; {decision.reason}" if decision.action == "up" else step.reason
    return Decision("up" if to > cur else "hold", cur, to, step.code, reason)
