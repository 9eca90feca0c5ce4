"""Carry out a gentle scale-down step (``scaling/drain.py`` decides it): mark and unmark pods, and
write pod-deletion-cost and delete the drained pods before the replicas drop."""

from collections.abc import Iterable, Mapping
from typing import Any

import kopf

from livedub.operator import client as api
from livedub.operator import constants as c
from livedub.operator.client import Client
from livedub.operator.handlers.pool_status import now_iso, parse_time
from livedub.operator.scaling.drain import DRAINED_DELETION_COST, DrainState, DrainStep
from livedub.operator.scaling.metrics import PodMetrics


def drain_state(body: kopf.Body) -> DrainState | None:
    stored = (body.get("status") or {}).get("drain") or {}
    pods, since = stored.get("pods"), parse_time(stored.get("since"))
    if not pods or since is None:
        return None
    return DrainState(pods=tuple(pods), since=since)


def _annotations(pod: Mapping[str, Any]) -> Mapping[str, str]:
    return pod.get("metadata", {}).get("annotations") or {}


def marked(pods: Iterable[Mapping[str, Any]]) -> set[str]:
    return {p["metadata"]["name"] for p in pods if c.ANNOTATION_DRAINING in _annotations(p)}


async def _set_mark(client: Client, namespace: str, pods: Iterable[str], value: str | None) -> None:
    # A merge patch with null removes the annotation.
    for pod in sorted(pods):
        await client.patch(api.PODS, namespace, pod, {"metadata": {"annotations": {c.ANNOTATION_DRAINING: value}}})


async def mark_deletion_costs(
    client: Client, namespace: str, samples: Mapping[str, PodMetrics | None], drained: Iterable[str] = ()
) -> None:
    """Cost = live streams, drained pods below all: the ReplicaSet removes those first."""
    costs = {pod: int(m.streams) for pod, m in samples.items() if m is not None}
    costs.update(dict.fromkeys(drained, DRAINED_DELETION_COST))
    for pod, cost in sorted(costs.items()):
        patch = {"metadata": {"annotations": {c.ANNOTATION_DELETION_COST: str(cost)}}}
        await client.patch(api.PODS, namespace, pod, patch)


async def apply_step(
    client: Client,
    patch: kopf.Patch,
    namespace: str,
    step: DrainStep,
    *,
    pods: list[dict[str, Any]],
    samples: Mapping[str, PodMetrics | None],
) -> None:
    """Write the step's marks and ``status.drain``; replicas are the caller's (``step.to_replicas``)."""
    already = marked(pods)
    if step.kind == "start":
        await _set_mark(client, namespace, step.pods, now_iso())
        # Taken after the marks: the grace starts once every drained pod has been told.
        patch.status["drain"] = {"pods": list(step.pods), "since": now_iso(precise=True)}
    elif step.kind == "wait":
        # After a restart between marking and recording, or a pod edited by hand: mark again.
        await _set_mark(client, namespace, set(step.pods) - already, now_iso())
    elif step.kind == "finish":
        await mark_deletion_costs(client, namespace, samples, drained=step.pods)
        # Deleted by name as well, before the caller lowers replicas: a ReplicaSet removes Pending
        # (unscheduled) then not-Ready pods before it looks at pod-deletion-cost, so with a pod still
        # starting it would keep the drained pod and remove the new one. A pod being deleted is no
        # longer one of its active pods; the replicas patch right after keeps it from making a
        # replacement (at worst one is made and, still Pending, is the next victim).
        for pod in sorted(step.pods):
            await client.delete(api.PODS, namespace, pod)
        patch.status["drain"] = None
    elif step.kind == "cancel":
        await _set_mark(client, namespace, set(step.pods) & already, None)
        patch.status["drain"] = None
    # Marks no drain owns (an operator that stopped after marking, before status recorded the drain,
    # or a cancelled drain's pod that missed the unmark): such a pod would refuse streams for ever.
    owned = set(step.pods) if step.kind in ("start", "wait", "finish") else set()
    stale = already - owned
    if stale:
        await _set_mark(client, namespace, stale, None)
