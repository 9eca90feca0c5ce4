"""Prometheus metric names the operator's autoscaler reads from every runtime pod."""

from typing import Final

IN_FLIGHT: Final = "sts_fragments_in_flight"
QUEUE_DEPTH: Final = "sts_queue_depth"
STREAMS: Final = "sts_streams_active"
BACKPRESSURE: Final = "sts_backpressure_events_total"
READY: Final = "sts_ready"
REJECTED: Final = "sts_fragments_rejected_total"

# --- Placement (issue 12) -------------------------------------------------------------------------
#: Counter: ``stream:init`` refused with the retryable ``POD_FULL``, by ``reason`` (one of
#: ``REFUSAL_REASONS``). The operator turns the rate of ``full`` refusals into an estimate of streams
#: waiting for a place (``livedub.operator.scaling.decide``); absent, it reads 0.
STREAMS_REFUSED: Final = "sts_streams_refused_total"
#: Why a pod refused: it serves its ``MAX_POD_STREAMS`` (``full``: demand the pool lacks room for),
#: it is marked for removal (``leaving``) or it sheds streams to rebalance the pool (``shedding``).
#: Only ``full`` is demand: a leaving or shedding pod refuses while other pods have room, and
#: counting those refusals would grow the pool it is shrinking or balancing.
REFUSAL_FULL: Final = "full"
REFUSAL_REASONS: Final[tuple[str, ...]] = (REFUSAL_FULL, "leaving", "shedding")
#: Gauge: 1 while the pod admits new streams (below ``MAX_POD_STREAMS``, models loaded, not marked for
#: removal), 0 otherwise.
ACCEPTING_STREAMS: Final = "sts_accepting_streams"

#: Label values of ``REJECTED``'s ``code`` that mean "this pod is past its capacity" (overload).
OVERLOAD_REJECTION_CODES: Final[tuple[str, ...]] = ("BACKPRESSURE_EXCEEDED",)

#: Label values of ``BACKPRESSURE``'s ``severity`` that count as load, mildest first.
BACKPRESSURE_SEVERITIES: Final[tuple[str, ...]] = ("low", "medium", "high", "critical")

#: Every name above: the runtime's registry must expose each of them.
READ_BY_OPERATOR: Final = frozenset(
    {IN_FLIGHT, QUEUE_DEPTH, STREAMS, BACKPRESSURE, READY, REJECTED, STREAMS_REFUSED, ACCEPTING_STREAMS}
)
