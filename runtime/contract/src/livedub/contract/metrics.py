"""Prometheus metric names the operator's autoscaler reads from every runtime pod."""

from typing import Final

IN_FLIGHT: Final = "sts_fragments_in_flight"
QUEUE_DEPTH: Final = "sts_queue_depth"
STREAMS: Final = "sts_streams_active"
BACKPRESSURE: Final = "sts_backpressure_events_total"
READY: Final = "sts_ready"

#: Label values of ``BACKPRESSURE``'s ``severity`` that count as load, mildest first.
BACKPRESSURE_SEVERITIES: Final[tuple[str, ...]] = ("low", "medium", "high", "critical")

#: Every name above: the runtime's registry must expose each of them.
READ_BY_OPERATOR: Final = frozenset({IN_FLIGHT, QUEUE_DEPTH, STREAMS, BACKPRESSURE, READY})
