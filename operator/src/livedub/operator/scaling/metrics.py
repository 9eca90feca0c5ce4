"""Read the runtime's Prometheus text into the few numbers the autoscaler needs.

Parsing uses prometheus_client's own parser so every exposition detail (escaping, ``# EOF``,
exemplars) is handled as Prometheus handles it; unknown metrics are ignored so a newer runtime
with more metrics never breaks an older operator.
"""

from dataclasses import dataclass, field

from prometheus_client.parser import text_string_to_metric_families

from livedub.contract.metrics import BACKPRESSURE, IN_FLIGHT, QUEUE_DEPTH, STREAMS
from livedub.contract.metrics import BACKPRESSURE_SEVERITIES as SEVERITIES


class MetricsParseError(ValueError):
    """The body is not Prometheus text, or lacks the in-flight gauge the autoscaler needs."""


@dataclass(frozen=True)
class PodMetrics:
    in_flight: float
    queue_depth: float = 0.0
    streams: float = 0.0
    # Counter values by severity, as exposed (cumulative since the pod started).
    backpressure: dict[str, float] = field(default_factory=dict)


def parse_metrics(text: str) -> PodMetrics:
    values: dict[str, float] = {}
    backpressure: dict[str, float] = {}
    try:
        for family in text_string_to_metric_families(text):
            for sample in family.samples:
                if sample.name == BACKPRESSURE:
                    severity = sample.labels.get("severity", "")
                    if severity in SEVERITIES:
                        backpressure[severity] = backpressure.get(severity, 0.0) + sample.value
                elif sample.name in (IN_FLIGHT, QUEUE_DEPTH, STREAMS):
                    # Summed: a runtime may label gauges (e.g. per engine); the pod's load is the total.
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
    )


def backpressure_events_since(previous: dict[str, float] | None, current: dict[str, float], min_severity: str) -> int:
    """Events at or above ``min_severity`` between two scrapes of one pod.

    A pod seen for the first time contributes nothing: its counters hold its whole history, not
    what happened since the last tick. A counter that went down means the pod restarted; its new
    value is all since the restart.
    """
    if previous is None:
        return 0
    wanted = SEVERITIES[SEVERITIES.index(min_severity) :]
    events = 0.0
    for severity in wanted:
        now, before = current.get(severity, 0.0), previous.get(severity, 0.0)
        events += now - before if now >= before else now
    return int(events)
