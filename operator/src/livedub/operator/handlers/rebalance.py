"""Carry out a rebalance plan (``scaling/rebalance.py`` decides it): read the pods' shed marks and
loads, write and take off marks, count and announce what was asked."""

from collections.abc import Collection, Iterable, Mapping
from typing import Any

import kopf

from livedub.operator import client as api
from livedub.operator import constants as c
from livedub.operator import telemetry
from livedub.operator.client import Client
from livedub.operator.scaling.decide import Policy
from livedub.operator.scaling.metrics import PodMetrics
from livedub.operator.scaling.rebalance import PodLoad, RebalancePlan, ShedMark


def pod_loads(
    pods: Iterable[Mapping[str, Any]], samples: Mapping[str, PodMetrics | None], draining: Collection[str]
) -> dict[str, PodLoad | None]:
    """Every live pod that was scraped or carries a mark; None where its load is unknown."""
    loads: dict[str, PodLoad | None] = {}
    for pod in pods:
        name = pod["metadata"]["name"]
        value = (pod["metadata"].get("annotations") or {}).get(c.ANNOTATION_SHED)
        sample = samples.get(name)
        if sample is None or not sample.models_ready:
            if value is not None:  # unknown load, but its mark still times out
                mark = ShedMark.parse(value)
                loads[name] = PodLoad(0.0, draining=name in draining, mark=mark, marked=True, known=False)
            elif name in samples:
                loads[name] = None
            continue
        mark = None if value is None else ShedMark.parse(value)
        loads[name] = PodLoad(sample.streams, sample.in_flight, name in draining, mark, value is not None)
    return loads


async def apply_plan(client: Client, body: kopf.Body, namespace: str, plan: RebalancePlan, policy: Policy) -> None:
    for pod, why in sorted(plan.clears.items()):
        await client.patch(api.PODS, namespace, pod, {"metadata": {"annotations": {c.ANNOTATION_SHED: None}}})
        telemetry.record_rebalance("done" if why == "done" else "cleared")
    for pod, mark in sorted(plan.marks.items()):
        await client.patch(api.PODS, namespace, pod, {"metadata": {"annotations": {c.ANNOTATION_SHED: mark.value()}}})
        telemetry.record_rebalance("shed", mark.streams)
    if plan.marks:
        asked = ", ".join(f"{pod} {mark.streams} of {mark.start:g}" for pod, mark in sorted(plan.marks.items()))
        message = (
            f"asked to shed streams (target {policy.target_per_pod:g}/pod): {asked}; "
            f"room for {plan.room:g} on the other pods"
        )
        kopf.info(body, reason="Rebalancing", message=message)
