"""Only refusals of a full pod are demand: the runtime's real exposition, read by the operator's real
parser, observation and decision. A pod refusing because it leaves the pool (or sheds streams) must
not make the pool grow while it is being shrunk or balanced."""

from livedub.operator.scaling.decide import History, Policy, decide
from livedub.operator.scaling.metrics import parse_metrics
from livedub.operator.scaling.observe import observe
from livedub.runtime.metrics import Metrics

POLICY = Policy(min_replicas=1, max_replicas=10, streams_per_pod=10)


def _scrape(refusals: dict[str, int], streams: int = 8) -> dict[str, object]:
    m = Metrics()
    m.ready.set(1)  # models loaded: the pod counts as capacity
    m.streams.set(streams)
    m.inflight.set(streams * 0.4)
    for reason, n in refusals.items():
        m.streams_refused.labels(reason=reason).inc(n)
    return {"pod-1": parse_metrics(m.render().decode())}


def _decide_after(refusals: dict[str, int]) -> str:
    first = observe(_scrape({}), {}, current_replicas=1, min_severity="high")  # type: ignore[arg-type]
    second = observe(
        _scrape(refusals),  # type: ignore[arg-type]
        first.counters,
        current_replicas=1,
        min_severity="high",
        interval_s=15.0,
    )
    return decide(second.observation, POLICY, History(), now=1000.0).action


def test_refusals_of_a_leaving_or_shedding_pod_do_not_scale_the_pool_up() -> None:
    assert _decide_after({"leaving": 30, "shedding": 30}) == "hold"


def test_refusals_of_a_full_pod_do() -> None:
    assert _decide_after({"full": 3}) == "up"


def test_an_older_runtime_without_the_label_still_counts_as_full() -> None:
    text = "# TYPE sts_fragments_in_flight gauge\nsts_fragments_in_flight 1\n"
    text += "# TYPE sts_streams_refused_total counter\nsts_streams_refused_total 4\n"
    assert parse_metrics(text).streams_refused == 4
    labelled = text.replace("sts_streams_refused_total 4", 'sts_streams_refused_total{reason="leaving"} 4')
    assert parse_metrics(labelled).streams_refused == 0
