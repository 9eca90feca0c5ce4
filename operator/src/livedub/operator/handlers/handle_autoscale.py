"""The per-pool tick: repair drift, refresh status, and (builtin mode) scrape, decide, scale."""

import time

import kopf

from livedub.operator import client as api
from livedub.operator.builders.common import deployment_name, label_selector_string
from livedub.operator.client import Client, connect
from livedub.operator.errors import InvalidSpecError
from livedub.operator.handlers.handle_pool import announce
from livedub.operator.handlers.pool_status import parse_time, record_decision, record_rollout
from livedub.operator.handlers.reconcile import ReconcileResult, reconcile_children
from livedub.operator.scaling.decide import Decision, History, Policy, decide
from livedub.operator.scaling.observe import observe
from livedub.operator.scaling.scrape import scrape_all, scrape_target
from livedub.operator.settings import OperatorSettings
from livedub.operator.spec import PoolSpec, parse_pool_spec


def policy_of(spec: PoolSpec) -> Policy:
    a = spec.autoscaling
    return Policy(
        min_replicas=spec.min_replicas,
        max_replicas=spec.max_replicas,
        target_per_pod=a.target_in_flight_per_pod,
        tolerance=a.tolerance,
        scale_up_cooldown_s=a.scale_up_cooldown_seconds,
        scale_down_cooldown_s=a.scale_down_cooldown_seconds,
        scale_down_step=a.scale_down_step,
    )


async def _autoscale(
    client: Client,
    body: kopf.Body,
    patch: kopf.Patch,
    memo: kopf.Memo,
    spec: PoolSpec,
    result: ReconcileResult,
    settings: OperatorSettings,
) -> Decision:
    name, namespace = body["metadata"]["name"], body["metadata"]["namespace"]
    pods = await client.list(api.PODS, namespace, label_selector_string(name))
    targets = [t for pod in pods if (t := scrape_target(pod, spec.runtime.port)) is not None]
    samples = await scrape_all(targets, timeout_s=settings.scrape_timeout_s, concurrency=settings.scrape_concurrency)
    rnd = observe(
        samples,
        memo.get("backpressure", {}),
        current_replicas=result.replicas,
        min_severity=spec.autoscaling.backpressure_severity,
    )
    memo["backpressure"] = rnd.counters
    status = body.get("status") or {}
    history = History(parse_time(status.get("lastScaleUpTime")), parse_time(status.get("lastScaleDownTime")))
    decision = decide(rnd.observation, policy_of(spec), history, time.time())
    if decision.action != "hold":
        await client.patch(
            api.DEPLOYMENTS, namespace, deployment_name(name), {"spec": {"replicas": decision.to_replicas}}
        )
    record_decision(body, patch, decision, rnd.observation)
    previous = (status.get("lastScaling") or {}).get("code")
    # Every change is an Event; a hold only when its reason differs from the last decision's,
    # so a quiet pool does not post an Event per tick.
    if decision.action != "hold" or decision.code != previous:
        message = f"{decision.from_replicas} -> {decision.to_replicas}: {decision.reason}"
        kopf.info(body, reason=decision.code, message=message)
    return decision


async def tick(body: kopf.Body, patch: kopf.Patch, memo: kopf.Memo, settings: OperatorSettings) -> None:
    if body["metadata"].get("deletionTimestamp"):
        return  # being deleted: recreating children now would only orphan them
    if "observedGeneration" not in (body.get("status") or {}):
        return  # the create handler has not finished its first reconcile; let it go first
    try:
        spec = parse_pool_spec(body.get("spec"))
    except InvalidSpecError:
        return  # the create/update handler already wrote why into status
    async with connect() as client:
        result = await reconcile_children(client, body, spec)
        announce(body, result)
        record_rollout(body, patch, result)
        if spec.autoscaling.mode == "builtin":
            await _autoscale(client, body, patch, memo, spec, result, settings)
