"""Pool status pieces: conditions and phase, computed from what was observed (pure)."""

from collections.abc import Mapping, Sequence
from typing import Any, Literal

ConditionStatus = Literal["True", "False", "Unknown"]


def set_condition(
    conditions: Sequence[Mapping[str, Any]] | None,
    type_: str,
    status: ConditionStatus,
    reason: str,
    message: str,
    *,
    now: str,
    generation: int | None = None,
) -> list[dict[str, Any]]:
    """Replace one condition; keep ``lastTransitionTime`` unless its status really changed."""
    result = [dict(cond) for cond in conditions or [] if cond.get("type") != type_]
    old = next((cond for cond in conditions or [] if cond.get("type") == type_), None)
    changed = old is None or old.get("status") != status
    new: dict[str, Any] = {
        "type": type_,
        "status": status,
        "reason": reason,
        "message": message,
        "lastTransitionTime": now if changed or old is None else old.get("lastTransitionTime", now),
    }
    if generation is not None:
        new["observedGeneration"] = generation
    result.append(new)
    return sorted(result, key=lambda cond: str(cond["type"]))


def rollout_conditions(
    conditions: Sequence[Mapping[str, Any]] | None,
    *,
    desired: int,
    ready: int,
    missing_voices: Sequence[str],
    now: str,
    generation: int | None,
    cache_problem: str | None = None,
) -> tuple[str, list[dict[str, Any]]]:
    """Phase plus the Ready/Progressing/Degraded conditions for a pool whose spec is valid."""
    conds: list[dict[str, Any]] = [dict(cond) for cond in conditions or []]
    if desired == 0:
        conds = set_condition(
            conds, "Ready", "False", "ScaledToZero", "no replicas wanted", now=now, generation=generation
        )
    elif ready > 0:
        conds = set_condition(
            conds, "Ready", "True", "PodsReady", f"{ready}/{desired} pods ready", now=now, generation=generation
        )
    else:
        conds = set_condition(
            conds, "Ready", "False", "NoReadyPods", f"0/{desired} pods ready", now=now, generation=generation
        )
    progressing = ready < desired
    conds = set_condition(
        conds,
        "Progressing",
        "True" if progressing else "False",
        "RollingOut" if progressing else "Stable",
        f"{ready}/{desired} pods ready",
        now=now,
        generation=generation,
    )
    if missing_voices:
        conds = set_condition(
            conds,
            "Degraded",
            "True",
            "VoiceProfileMissing",
            "missing VoiceProfiles: " + ", ".join(missing_voices),
            now=now,
            generation=generation,
        )
    elif cache_problem:
        conds = set_condition(
            conds, "Degraded", "True", "ModelCacheAccessMode", cache_problem, now=now, generation=generation
        )
    else:
        conds = set_condition(conds, "Degraded", "False", "AsExpected", "", now=now, generation=generation)
    if missing_voices or cache_problem:
        phase = "Degraded"
    elif ready > 0 or desired == 0:
        phase = "Running"
    else:
        phase = "Pending"
    return phase, conds
