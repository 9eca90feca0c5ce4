"""Write what a reconcile or an autoscaler tick observed into the pool's status patch."""

import datetime
from typing import Any

import kopf

from livedub.operator.builders.common import label_selector_string
from livedub.operator.builders.status import rollout_conditions, set_condition
from livedub.operator.handlers.reconcile import ReconcileResult
from livedub.operator.scaling.decide import Decision, Observation, Policy, pending_streams


def now_iso(*, precise: bool = False) -> str:
    """RFC 3339 UTC. ``precise``: with milliseconds, for a time a duration is measured from (a drain's
    grace): truncated to the second, a 2 s grace could end 1.1 s after it began."""
    spec = "milliseconds" if precise else "seconds"
    return datetime.datetime.now(datetime.UTC).isoformat(timespec=spec).replace("+00:00", "Z")


def parse_time(value: Any) -> float | None:
    if not value:
        return None
    return datetime.datetime.fromisoformat(str(value).replace("Z", "+00:00")).timestamp()


def _conditions(body: kopf.Body, patch: kopf.Patch) -> list[dict[str, Any]]:
    # Later writes within one handler run build on earlier ones (the patch), then on stored status.
    pending = patch.status.get("conditions")
    if pending is not None:
        return list(pending)
    return list((body.get("status") or {}).get("conditions") or [])


def record_invalid(body: kopf.Body, patch: kopf.Patch, message: str) -> None:
    now, gen = now_iso(), body["metadata"].get("generation")
    conds = set_condition(_conditions(body, patch), "Ready", "False", "InvalidSpec", message, now=now, generation=gen)
    conds = set_condition(conds, "Degraded", "True", "InvalidSpec", message, now=now, generation=gen)
    patch.status["phase"] = "Failed"
    patch.status["message"] = message
    patch.status["observedGeneration"] = gen
    patch.status["conditions"] = conds


def record_rollout(body: kopf.Body, patch: kopf.Patch, result: ReconcileResult) -> None:
    gen = body["metadata"].get("generation")
    phase, conds = rollout_conditions(
        _conditions(body, patch),
        desired=result.replicas,
        ready=result.ready_replicas,
        missing_voices=result.missing_voices,
        now=now_iso(),
        generation=gen,
        cache_problem=result.cache_problem,
    )
    patch.status["phase"] = phase
    patch.status["message"] = next((c["message"] for c in conds if c["type"] == "Degraded"), "")
    patch.status["conditions"] = conds
    patch.status["observedGeneration"] = gen
    patch.status["replicas"] = result.replicas
    patch.status["readyReplicas"] = result.ready_replicas
    patch.status["desiredReplicas"] = result.replicas
    patch.status["selector"] = label_selector_string(body["metadata"]["name"])
    patch.status["voiceProfiles"] = result.voices


def record_decision(body: kopf.Body, patch: kopf.Patch, decision: Decision, obs: Observation, policy: Policy) -> None:
    now = now_iso()
    patch.status["lastScaling"] = {
        "time": now,
        "action": decision.action,
        "code": decision.code,
        "fromReplicas": decision.from_replicas,
        "toReplicas": decision.to_replicas,
        "reason": decision.reason,
        "streams": int(obs.streams),
        "streamsWaiting": round(pending_streams(obs, policy)),
        "inFlight": int(obs.in_flight),
        "queueDepth": int(obs.queue_depth),
        "podsScraped": obs.pods_scraped,
        "podsUnreachable": obs.pods_unreachable,
        "backpressureEvents": obs.backpressure_events,
        "overloadRejections": obs.overload_rejections,
    }
    patch.status["desiredReplicas"] = decision.to_replicas
    # A drain started is a scale-down and one undone a scale-up for the cooldowns (scaling/drain.py),
    # though replicas do not move then: otherwise drains could start and cancel on every tick.
    if decision.action == "up" or decision.code == "DrainCancelled":
        patch.status["lastScaleUpTime"] = now
    elif decision.action == "down" or decision.code == "DrainStarted":
        patch.status["lastScaleDownTime"] = now
    scaling = decision.action != "hold"
    patch.status["conditions"] = set_condition(
        _conditions(body, patch),
        "Scaling",
        "True" if scaling else "False",
        decision.code,
        decision.reason,
        now=now,
        generation=body["metadata"].get("generation"),
    )
