"""DubbingPool create/update/resume: validate the spec, reconcile children, report."""

from typing import Any

import kopf

from livedub.operator.client import connect
from livedub.operator.errors import InvalidSpecError
from livedub.operator.handlers.pool_status import record_invalid, record_rollout
from livedub.operator.handlers.reconcile import ReconcileResult, reconcile_children
from livedub.operator.spec import PoolSpec, parse_pool_spec


def parse_or_record(body: kopf.Body, patch: kopf.Patch) -> PoolSpec:
    """The parsed spec; for a bad one, status and an Event say why, then a permanent error."""
    try:
        return parse_pool_spec(body.get("spec"))
    except InvalidSpecError as exc:
        record_invalid(body, patch, str(exc))
        kopf.warn(body, reason="InvalidSpec", message=str(exc))
        raise


def announce(body: kopf.Body, result: ReconcileResult) -> None:
    for kind, outcome in result.changed.items():
        if outcome != "unchanged":
            message = f"{kind} {body['metadata']['name']} {outcome}"
            kopf.info(body, reason=f"{kind}{outcome.capitalize()}", message=message)
    if result.missing_voices and missing_changed(body, result.missing_voices):
        kopf.warn(body, reason="VoiceProfileMissing", message="missing: " + ", ".join(result.missing_voices))
    if result.cache_problem and degraded(body) != ("ModelCacheAccessMode", result.cache_problem):
        kopf.warn(body, reason="ModelCacheAccessMode", message=result.cache_problem)  # once, not every tick


def degraded(body: kopf.Body) -> tuple[str, str]:
    """The stored Degraded condition's reason and message ("" when there is none)."""
    conditions = (body.get("status") or {}).get("conditions") or []
    cond: dict[str, Any] = next((c for c in conditions if c.get("type") == "Degraded"), {})
    return str(cond.get("reason", "")), str(cond.get("message", ""))


def missing_changed(body: kopf.Body, missing: list[str]) -> bool:
    """True unless the stored status already reports exactly these missing VoiceProfiles.

    The periodic tick reconciles every 15 s; without this, a pool missing one profile posted the
    same Warning Event every tick. A change in what is missing is news and posts again.
    """
    reported = "missing VoiceProfiles: " + ", ".join(missing)
    return degraded(body) != ("VoiceProfileMissing", reported)


async def reconcile_pool(body: kopf.Body, patch: kopf.Patch) -> None:
    spec = parse_or_record(body, patch)
    async with connect() as client:
        result = await reconcile_children(client, body, spec)
    record_rollout(body, patch, result)
    announce(body, result)
