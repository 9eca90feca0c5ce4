"""The per-pool tick: repair drift, refresh status, and (builtin mode) scrape, decide, scale."""

import time

import kopf

from livedub.operator import client as api
from livedub.operator import constants as c
from livedub.operator.builders.common import deployment_name, label_selector_string
from livedub.operator.client import Client, connect
from livedub.operator.errors import InvalidSpecError
from livedub.operator.handlers.handle_pool import announce
from livedub.operator.handlers.pool_status import parse_time, record_decision, record_rollout
from livedub.operator.handlers.reconcile import ReconcileResult, reconcile_children
from livedub.operator.scaling.decide import Decision, History, decide
from livedub.operator.scaling.metrics import PodMetrics
from livedub.operator.scaling.observe import observe
from livedub.operator.scaling.policy import policy_of
from livedub.operator.scaling.scrape import scrape_all, scrape_target
from livedub.operator.settings import OperatorSettings
from livedub.operator.spec import PoolSpec, parse_pool_spec


def activation_requested(body: kopf.Body) -> bool:
    """An activation (connection attempt, pending stream) newer than the last scale-down."""
    requested = parse_time((body["metadata"].get("annotations") or {}).get(c.ANNOTATION_ACTIVATION))
    if requested is None:
        return False
    last_down = parse_time((body.get("status") or {}).get("lastScaleDownTime"))
    return last_down is None or requested >= last_down


async def mark_deletion_costs(client: Client, namespace: str, samples: dict[str, PodMetrics | None]) -> None:
    """Cost = live streams: the ReplicaSet then removes the least-loaded pod (fewest streams to move)."""
    for pod, metrics in sorted(samples.items()):
        if metrics is None:
            continue
        cost = str(int(metrics.streams))
        patch = {"metadata": {"annotations": {c.ANNOTATION_DELETION_COST: cost}}}
        await client.patch(api.PODS, namespace, pod, patch)


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
    now = time.time()
    last_round = memo.get("last_round")
    rnd = observe(
        samples,
        memo.get("counters", {}),
        current_replicas=result.replicas,
        min_severity=spec.autoscaling.backpressure_severity,
        interval_s=0.0 if last_round is None else now - last_round,
        activation_requested=activation_requested(body),
    )
    memo["counters"], memo["last_round"] = rnd.counters, now
    status = body.get("status") or {}
    history = History(parse_time(status.get("lastScaleUpTime")), parse_time(status.get("lastScaleDownTime")))
    policy = policy_of(spec)
    decision = decide(rnd.observation, policy, history, now)
    if decision.action == "down":
        await mark_deletion_costs(client, namespace, samples)
    if decision.action != "hold":
        await client.patch(
            api.DEPLOYMENTS, namespace, deployment_name(name), {"spec": {"replicas": decision.to_replicas}}
        )
    record_decision(body, patch, decision, rnd.observation, policy)
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
