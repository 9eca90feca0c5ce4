"""The per-pool tick: repair drift, refresh status, and (builtin mode) scrape, decide, scale."""

import time
from collections.abc import Mapping
from typing import Any

import kopf

from livedub.operator import client as api
from livedub.operator import constants as c
from livedub.operator import telemetry
from livedub.operator.builders.common import deployment_name, label_selector_string
from livedub.operator.client import Client, connect
from livedub.operator.errors import InvalidSpecError
from livedub.operator.handlers.drain import apply_step, drain_state, mark_deletion_costs
from livedub.operator.handlers.handle_pool import announce
from livedub.operator.handlers.pool_status import parse_time, record_decision, record_rollout
from livedub.operator.handlers.rebalance import apply_plan, pod_loads
from livedub.operator.handlers.reconcile import ReconcileResult, reconcile_children, replicas_for
from livedub.operator.scaling import drain, rebalance
from livedub.operator.scaling.decide import Decision, History, Observation, Policy, decide, pending_streams
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


def pool_load(decision: Decision, obs: Observation, policy: Policy) -> telemetry.PoolLoad:
    return telemetry.PoolLoad(
        desired_replicas=decision.to_replicas,
        streams=obs.streams,
        # Pods that answered with their models loaded: a pod still loading (or failed) serves nothing.
        capacity_streams=obs.pods_scraped * policy.streams_per_pod,
        streams_waiting=pending_streams(obs, policy),
        pods_unreachable=obs.pods_unreachable,
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
    policy = policy_of(spec, now)
    decided = decide(rnd.observation, policy, history, now)
    live = [p for p in pods if not p["metadata"].get("deletionTimestamp")]
    step = drain.plan(
        decided,
        rnd.observation,
        policy,
        drain_state(body),
        {pod: None if m is None else m.streams for pod, m in samples.items()},
        existing=[p["metadata"]["name"] for p in live],
        now=now,
        grace_s=spec.autoscaling.drain_grace_seconds,
    )
    await apply_step(client, patch, namespace, step, pods=live, samples=samples)
    decision = drain.outcome(decided, step)
    await _rebalance(client, body, namespace, spec, policy, step, live, samples, rnd.observation, now)
    if decision.action == "down" and step.kind == "none":
        await mark_deletion_costs(client, namespace, samples)  # above maxReplicas: no drain for a spec change
    if decision.action != "hold":
        await client.patch(
            api.DEPLOYMENTS, namespace, deployment_name(name), {"spec": {"replicas": decision.to_replicas}}
        )
    record_decision(body, patch, decision, rnd.observation, policy)
    telemetry.record_decision(
        namespace, name, decision.action, decision.code, pool_load(decision, rnd.observation, policy)
    )
    previous = (status.get("lastScaling") or {}).get("code")
    # Every change is an Event; a hold only when its reason differs from the last decision's,
    # so a quiet pool does not post an Event per tick.
    if decision.action != "hold" or decision.code != previous:
        message = f"{decision.from_replicas} -> {decision.to_replicas}: {decision.reason}"
        kopf.info(body, reason=decision.code, message=message)
    return decision


async def _rebalance(
    client: Client,
    body: kopf.Body,
    namespace: str,
    spec: PoolSpec,
    policy: Policy,
    step: drain.DrainStep,
    live: list[dict[str, Any]],
    samples: Mapping[str, PodMetrics | None],
    obs: Observation,
    now: float,
) -> None:
    """Ask overloaded pods to shed streams to pods with room (after the drain step: never a drained pod)."""
    draining = set(step.pods) if step.kind in ("start", "wait") else set()
    gone = set(step.pods) if step.kind == "finish" else set()
    loads = pod_loads([p for p in live if p["metadata"]["name"] not in gone], samples, draining)
    a = spec.autoscaling
    plan = rebalance.plan(
        loads,
        policy,
        pending=pending_streams(obs, policy),
        now=now,
        max_per_tick=a.rebalance_max_streams_per_tick,
        timeout_s=a.rebalance_timeout_seconds,
    )
    await apply_plan(client, body, namespace, plan, policy)


async def tick(body: kopf.Body, patch: kopf.Patch, memo: kopf.Memo, settings: OperatorSettings) -> None:
    name, namespace = body["metadata"]["name"], body["metadata"]["namespace"]
    if body["metadata"].get("deletionTimestamp"):
        telemetry.forget_pool(namespace, name)
        return  # being deleted: recreating children now would only orphan them
    if "observedGeneration" not in (body.get("status") or {}):
        return  # the create handler has not finished its first reconcile; let it go first
    try:
        spec = parse_pool_spec(body.get("spec"))
    except InvalidSpecError:
        telemetry.forget_pool(namespace, name)  # no replicas to report; the last figures would mislead
        return  # the create/update handler already wrote why into status
    async with connect() as client:
        result = await reconcile_children(client, body, spec)
        announce(body, result)
        record_rollout(body, patch, result)
        telemetry.record_bounds(
            namespace, name, replicas=result.replicas, min_replicas=spec.min_replicas, max_replicas=spec.max_replicas
        )
        if spec.autoscaling.mode == "builtin":
            await _autoscale(client, body, patch, memo, spec, result, settings)
        else:
            telemetry.record_desired(namespace, name, replicas_for(spec, result.replicas))
