"""Parsing the runtime's /metrics: real exposition produced by prometheus_client itself."""

import pytest
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

from livedub.operator.scaling.metrics import MetricsParseError, backpressure_events_since, parse_metrics


def exposition(in_flight: float = 3, queue: float = 2, bp: dict[str, float] | None = None) -> str:
    reg = CollectorRegistry()
    Gauge("sts_fragments_in_flight", "in flight", registry=reg).set(in_flight)
    Gauge("sts_queue_depth", "queued", registry=reg).set(queue)
    Gauge("sts_streams_active", "streams", registry=reg).set(4)
    events = Counter("sts_backpressure_events", "bp", ["severity"], registry=reg)
    for severity, n in (bp or {}).items():
        events.labels(severity=severity).inc(n)
    Histogram("sts_fragment_processing_seconds", "t", buckets=(1, 5), registry=reg).observe(2)
    Gauge("sts_gpu_utilization_percent", "gpu", registry=reg).set(77)
    return generate_latest(reg).decode()


def test_parses_real_exposition() -> None:
    m = parse_metrics(exposition(in_flight=3, queue=2, bp={"high": 2, "low": 7}))
    assert (m.in_flight, m.queue_depth, m.streams) == (3, 2, 4)
    assert m.backpressure == {"high": 2, "low": 7}


def test_labelled_gauges_are_summed_and_unknown_metrics_ignored() -> None:
    text = (
        "# TYPE sts_fragments_in_flight gauge\n"
        'sts_fragments_in_flight{engine="a"} 2\nsts_fragments_in_flight{engine="b"} 3\n'
        "# TYPE something_new gauge\nsomething_new 9\n"
        '# TYPE sts_backpressure_events_total counter\nsts_backpressure_events_total{severity="bogus"} 4\n'
    )
    m = parse_metrics(text)
    assert m.in_flight == 5 and m.queue_depth == 0 and m.backpressure == {}


@pytest.mark.parametrize("text", ["", "sts_queue_depth 1\n", "<html>502 Bad Gateway</html>"])
def test_missing_or_junk_is_an_error(text: str) -> None:
    with pytest.raises(MetricsParseError):
        parse_metrics(text)


def test_backpressure_deltas() -> None:
    assert backpressure_events_since(None, {"critical": 10}, "high") == 0  # first sight: history
    assert backpressure_events_since({"high": 1, "critical": 1}, {"high": 3, "critical": 2}, "high") == 3
    assert backpressure_events_since({"low": 1}, {"low": 50}, "medium") == 0
    assert backpressure_events_since({"high": 9}, {"high": 2}, "low") == 2  # pod restarted


def test_a_pod_still_loading_its_models_is_no_capacity() -> None:
    from livedub.operator.scaling.observe import observe

    loading = parse_metrics("# TYPE sts_fragments_in_flight gauge\nsts_fragments_in_flight 0\nsts_ready 0\n")
    serving = parse_metrics(exposition())
    assert not loading.models_ready and serving.models_ready  # no sts_ready at all: an older runtime, ready
    seen = observe({"a": loading, "b": serving}, {}, current_replicas=2, min_severity="high").observation
    assert seen.pods_scraped == 1 and seen.streams == 4
    # Neither capacity nor unreachable: still starting, so no second pod is asked for meanwhile.
    assert seen.pods_unreachable == 0 and seen.pods_starting == 1
