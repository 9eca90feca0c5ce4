"""The decision's :class:`Policy` from a parsed pool spec: one place, shared by the operator's tick
and the autoscaling simulator (``bench/autoscale.py``), so the benchmark runs the shipped defaults."""

from livedub.operator.scaling.decide import Policy
from livedub.operator.scaling.schedule import floor_at
from livedub.operator.spec import PoolSpec


def policy_of(spec: PoolSpec, now: float | None = None) -> Policy:
    """``now`` (epoch seconds): apply the warm floor of the schedules active then; None: minReplicas."""
    a = spec.autoscaling
    floor = floor_at(spec.min_replicas, spec.max_replicas, a.schedules if now is not None else (), now or 0.0)
    return Policy(
        min_replicas=floor.replicas,
        floor_source=floor.source,
        max_replicas=spec.max_replicas,
        streams_per_pod=spec.streams_per_pod,
        target_utilization=a.target_utilization,
        tolerance=a.tolerance,
        scale_up_cooldown_s=a.scale_up_cooldown_seconds,
        scale_down_cooldown_s=a.scale_down_cooldown_seconds,
        scale_down_step=a.scale_down_step,
        retry_after_s=a.stream_retry_after_seconds,
        overload_in_flight_per_stream=a.overload_in_flight_per_stream,
        rebalance_above=a.rebalance_above,
    )
