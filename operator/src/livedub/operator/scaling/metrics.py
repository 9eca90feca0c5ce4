"""Read the runtime's Prometheus text into the few numbers the autoscaler needs.

Parsing uses prometheus_client's own parser so every exposition detail (escaping, ``# EOF``,
exemplars) is handled as Prometheus handles it; unknown metrics are ignored so a newer runtime
with more metrics never breaks an older operator, and a metric an older runtime lacks reads 0
(``sts_streams_refused_total`` before the runtime refuses full pods).

Of the refusals only ``reason="full"`` is demand: a pod that is leaving the pool or shedding streams
refuses while other pods have room, and reading those as streams waiting would scale up the pool
the operator is shrinking or balancing. A refusal without the label (a runtime from before the
label) only ever meant "full".
"""

from dataclasses import dataclass, field

from prometheus_client.parser import text_string_to_metric_families

from livedub.contract.metrics import (
    BACKPRESSURE,
    IN_FLIGHT,
    OVERLOAD_REJECTION_CODES,
    QUEUE_DEPTH,
    READY,
    REFUSAL_FULL,
    REJECTED,
    STREAMS,
    STREAMS_REFUSED,
)
from livedub.contract.metrics import BACKPRESSURE_SEVERITIES as SEVERITIES

#: Keys of :attr:`PodMetrics.counters` besides ``backpressure:<severity>``.
REFUSED_KEY = "streams_refused"
REJECTED_KEY = "overload_rejected"


class MetricsParseError(ValueError):
    """The body is not Prometheus text, or lacks the in-flight gauge the autoscaler needs."""


@dataclass(frozen=True)
class PodMetrics:
    in_flight: float
    queue_depth: float = 0.0
    streams: float = 0.0
    # Counter values by severity, as exposed (cumulative since the pod started).
    backpressure: dict[str, float] = field(default_factory=dict)
    streams_refused: float = 0.0
    overload_rejected: float = 0.0
    #: ``sts_ready``: models loaded and not draining. A pod without it (an older runtime) counts as ready.
    models_ready: bool = True

    @property
    def counters(self) -> dict[str, float]:
        """Every cumulative counter the autoscaler compares between scrapes, by key."""
        return {
            **{f"backpressure:{s}": v for s, v in self.backpressure.items()},
            REFUSED_KEY: self.streams_refused,
            REJECTED_KEY: self.overload_rejected,
        }


def parse_metrics(text: str) -> PodMetrics:
    values: dict[str, float] = {}
    backpressure: dict[str, float] = {}
    rejected = 0.0
    try:
        for family in text_string_to_metric_families(text):
            for sample in family.samples:
                if sample.name == BACKPRESSURE:
                    severity = sample.labels.get("severity", "")
                    if severity in SEVERITIES:
                        backpressure[severity] = backpressure.get(severity, 0.0) + sample.value
                elif sample.name == STREAMS_REFUSED:
                    if sample.labels.get("reason", REFUSAL_FULL) == REFUSAL_FULL:
                        values[STREAMS_REFUSED] = values.get(STREAMS_REFUSED, 0.0) + sample.value
                elif sample.name == REJECTED:
                    if sample.labels.get("code", "") in OVERLOAD_REJECTION_CODES:
                        rejected += sample.value
                elif sample.name in (IN_FLIGHT, QUEUE_DEPTH, STREAMS, READY):
                    # Summed: a runtime may label these (e.g. per engine); the pod's figure is the total.
                    values[sample.name] = values.get(sample.name, 0.0) + sample.value
    except ValueError as exc:
        raise MetricsParseError(f"not Prometheus text: {exc}") from exc
    if IN_FLIGHT not in values:
        raise MetricsParseError(f"{IN_FLIGHT} missing from /metrics")
    return PodMetrics(
        in_flight=values[IN_FLIGHT],
        queue_depth=values.get(QUEUE_DEPTH, 0.0),
        streams=values.get(STREAMS, 0.0),
        backpressure=backpressure,
        streams_refused=values.get(STREAMS_REFUSED, 0.0),
        overload_rejected=rejected,
        models_ready=values.get(READY, 1.0) > 0,
    )


def counter_delta(previous: float | None, current: float) -> float:
    """Increase of one counter between two scrapes of one pod.

    A pod seen for the first time contributes nothing: its counter holds its whole history, not
    what happened since the last tick. A counter that went down means the pod restarted; its new
    value is all since the restart.
    """
    if previous is None:
        return 0.0
    return current - previous if current >= previous else current


def backpressure_events_since(previous: dict[str, float] | None, current: dict[str, float], min_severity: str) -> int:
    """Events at or above ``min_severity`` between two scrapes of one pod (see :func:`counter_delta`)."""
    if previous is None:
        return 0
    wanted = SEVERITIES[SEVERITIES.index(min_severity) :]
    return int(sum(counter_delta(previous.get(s, 0.0), current.get(s, 0.0)) for s in wanted))
