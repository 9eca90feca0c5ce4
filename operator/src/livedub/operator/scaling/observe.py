"""Turn one round of scrapes into the decision's :class:`Observation` (pure)."""

from collections.abc import Mapping
from dataclasses import dataclass

from livedub.operator.scaling.decide import Observation
from livedub.operator.scaling.metrics import PodMetrics, backpressure_events_since


@dataclass(frozen=True)
class Round:
    observation: Observation
    # Counters to compare against next round, per pod that answered this round.
    counters: dict[str, dict[str, float]]


def observe(
    samples: Mapping[str, PodMetrics | None],
    previous_counters: Mapping[str, dict[str, float]],
    *,
    current_replicas: int,
    min_severity: str,
) -> Round:
    answered = {pod: m for pod, m in samples.items() if m is not None}
    events = sum(
        backpressure_events_since(previous_counters.get(pod), m.backpressure, min_severity)
        for pod, m in answered.items()
    )
    return Round(
        observation=Observation(
            current_replicas=current_replicas,
            pods_scraped=len(answered),
            pods_unreachable=len(samples) - len(answered),
            in_flight=sum(m.in_flight for m in answered.values()),
            queue_depth=sum(m.queue_depth for m in answered.values()),
            backpressure_events=events,
        ),
        counters={pod: dict(m.backpressure) for pod, m in answered.items()},
    )
