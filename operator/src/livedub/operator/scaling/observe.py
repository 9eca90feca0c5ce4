"""Turn one round of scrapes into the decision's :class:`Observation` (pure)."""

from collections.abc import Mapping
from dataclasses import dataclass

from livedub.operator.scaling.decide import Observation
from livedub.operator.scaling.metrics import (
    REFUSED_KEY,
    REJECTED_KEY,
    PodMetrics,
    backpressure_events_since,
    counter_delta,
)


@dataclass(frozen=True)
class Round:
    observation: Observation
    # Counters to compare against next round, per pod that answered this round.
    counters: dict[str, dict[str, float]]


def _backpressure(counters: Mapping[str, float]) -> dict[str, float]:
    return {k.split(":", 1)[1]: v for k, v in counters.items() if k.startswith("backpressure:")}


def observe(
    samples: Mapping[str, PodMetrics | None],
    previous_counters: Mapping[str, dict[str, float]],
    *,
    current_replicas: int,
    min_severity: str,
    interval_s: float = 0.0,
    activation_requested: bool = False,
) -> Round:
    """``interval_s``: seconds since the previous round (0 when there was none)."""
    # A pod still loading its models (or whose models failed to load) answers, but is no capacity.
    answered = {pod: m for pod, m in samples.items() if m is not None and m.models_ready}
    events = refused = rejected = 0.0
    for pod, m in answered.items():
        before = previous_counters.get(pod)
        events += backpressure_events_since(
            None if before is None else _backpressure(before), m.backpressure, min_severity
        )
        if before is not None:
            refused += counter_delta(before.get(REFUSED_KEY, 0.0), m.streams_refused)
            rejected += counter_delta(before.get(REJECTED_KEY, 0.0), m.overload_rejected)
    return Round(
        observation=Observation(
            current_replicas=current_replicas,
            pods_scraped=len(answered),
            # A pod that answered with its models not loaded yet is neither capacity nor unreachable:
            # it is still starting (pods_starting), so the guard against asking twice holds.
            pods_unreachable=sum(1 for m in samples.values() if m is None),
            streams=sum(m.streams for m in answered.values()),
            streams_refused=refused,
            interval_s=interval_s,
            in_flight=sum(m.in_flight for m in answered.values()),
            queue_depth=sum(m.queue_depth for m in answered.values()),
            backpressure_events=int(events),
            overload_rejections=int(rejected),
            activation_requested=activation_requested,
        ),
        counters={pod: m.counters for pod, m in answered.items()},
    )
