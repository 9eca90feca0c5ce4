"""The autoscaler's decision: pure maths, every branch, plus properties over random inputs."""

import math

from hypothesis import given
from hypothesis import strategies as st

from livedub.operator.scaling.decide import Decision, History, Observation, Policy, decide, pending_streams
from livedub.operator.scaling.metrics import PodMetrics
from livedub.operator.scaling.observe import observe
from livedub.operator.scaling.policy import policy_of
from livedub.operator.spec import parse_pool_spec

# Capacity 10 streams per pod, aiming for 8 (0.8): round numbers for the arithmetic below.
POLICY = Policy(
    min_replicas=1,
    max_replicas=10,
    streams_per_pod=10,
    target_utilization=0.8,
    tolerance=0.1,
    scale_up_cooldown_s=30,
    scale_down_cooldown_s=300,
    scale_down_step=1,
    retry_after_s=10,
    overload_in_flight_per_stream=2.0,
)
NOW = 10_000.0


def obs(
    current: int,
    streams: float,
    *,
    refused: float = 0,
    interval: float = 15,
    in_flight: float | None = None,
    queue: float = 0,
    scraped: int | None = None,
    unreachable: int = 0,
    bp: int = 0,
    rejected: int = 0,
    activation: bool = False,
) -> Observation:
    return Observation(
        current_replicas=current,
        pods_scraped=current if scraped is None else scraped,
        pods_unreachable=unreachable,
        streams=streams,
        streams_refused=refused,
        interval_s=interval,
        in_flight=0.4 * streams if in_flight is None else in_flight,
        queue_depth=queue,
        backpressure_events=bp,
        overload_rejections=rejected,
        activation_requested=activation,
    )


def test_scales_up_on_streams_per_pod() -> None:
    d = decide(obs(2, streams=20), POLICY, History(), NOW)  # 20 / 8 -> 3 pods
    assert (d.action, d.to_replicas, d.code) == ("up", 3, "ScaledUp")
    assert "20 streams" in d.reason


def test_queue_is_not_counted_twice_and_in_flight_is_not_demand() -> None:
    # Queued fragments are inside in_flight already; neither is demand. 8 streams on 1 pod: at target.
    d = decide(obs(1, streams=8, in_flight=9, queue=5), POLICY, History(), NOW)
    assert (d.action, d.code) == ("hold", "WithinTolerance")


def test_refusals_estimate_waiting_streams_without_saturating() -> None:
    # Two full pods (20 streams) refused 45 attempts in 15 s; a waiting worker retries every 10 s,
    # so 45 * 10 / 15 = 30 streams wait: 50 streams need ceil(50 / 8) = 7 pods, in one step.
    o = obs(2, streams=20, refused=45, in_flight=64 * 2)
    assert pending_streams(o, POLICY) == 30
    d = decide(o, POLICY, History(), NOW)
    assert (d.action, d.to_replicas) == ("up", 7)
    assert "30 waiting" in d.reason
    # No interval (first scrape): no estimate rather than a wrong one.
    assert pending_streams(obs(2, 20, refused=45, interval=0), POLICY) == 0


def test_waiting_streams_scale_up_inside_the_tolerance_band_and_block_scale_down() -> None:
    # 8 streams + 1 waiting on 1 pod: ratio 1.125 is above 1.1, and any wait is a reason anyway.
    d = decide(obs(1, streams=8, refused=1.5), POLICY, History(), NOW)
    assert (d.action, d.to_replicas) == ("up", 2)
    # Room in total but refusals somewhere: no scale-down.
    d = decide(obs(4, streams=5, refused=1.5), POLICY, History(), NOW)
    assert (d.action, d.code) == ("hold", "StreamsWaiting")


def test_within_tolerance_holds() -> None:
    d = decide(obs(2, streams=17), POLICY, History(), NOW)  # ratio 1.06 < 1.1
    assert (d.action, d.code) == ("hold", "WithinTolerance")


def test_hysteresis_band_blocks_small_scale_down() -> None:
    # 3 pods aim for 24: 17 wants 3 (hold); 15.9 wants 2 with ratio .66 -> down.
    assert decide(obs(3, 17), POLICY, History(), NOW).action == "hold"
    assert decide(obs(3, 15.9), POLICY, History(), NOW).to_replicas == 2


def test_scale_up_respects_max_and_cooldown() -> None:
    d = decide(obs(9, streams=400), POLICY, History(), NOW)
    assert d.to_replicas == 10
    d = decide(obs(10, streams=400), POLICY, History(), NOW)
    assert (d.action, d.code) == ("hold", "AtMaxReplicas")
    d = decide(obs(3, streams=40), POLICY, History(last_scale_up=NOW - 10), NOW)
    assert (d.action, d.code) == ("hold", "ScaleUpCooldown")
    assert "20s left" in d.reason
    assert decide(obs(3, streams=40), POLICY, History(last_scale_up=NOW - 31), NOW).action == "up"


def test_scale_down_one_step_after_cooldown_from_any_change() -> None:
    idle = obs(5, streams=0)
    d = decide(idle, POLICY, History(), NOW)
    assert (d.action, d.to_replicas, d.code) == ("down", 4, "ScaledDown")
    d = decide(idle, POLICY, History(last_scale_up=NOW - 100), NOW)
    assert (d.action, d.code) == ("hold", "ScaleDownCooldown")
    assert decide(idle, POLICY, History(last_scale_down=NOW - 299), NOW).action == "hold"
    assert decide(idle, POLICY, History(last_scale_down=NOW - 301), NOW).action == "down"


def test_scale_down_step_and_floor() -> None:
    policy = Policy(min_replicas=2, max_replicas=10, streams_per_pod=10, scale_down_step=3)
    assert decide(obs(8, streams=0), policy, History(), NOW).to_replicas == 5
    assert decide(obs(3, streams=0), policy, History(), NOW).to_replicas == 2
    d = decide(obs(2, streams=0), policy, History(), NOW)
    assert (d.action, d.code) == ("hold", "AtMinReplicas")


def test_unreachable_pods_count_at_target_and_block_scale_down() -> None:
    d = decide(obs(4, streams=0, scraped=3, unreachable=1), POLICY, History(), NOW)
    assert (d.action, d.code) == ("hold", "PodsUnreachable")
    # One answering at 8 + one silent (counted 8) = 16 over 2 pods: at target.
    d = decide(obs(2, streams=8, scraped=1, unreachable=1), POLICY, History(), NOW)
    assert d.code == "WithinTolerance"


def test_overload_adds_one_pod_once_the_requested_pods_are_ready() -> None:
    for overloaded in (
        obs(2, streams=8, in_flight=20),  # 2.5 fragments in flight per stream: behind real time
        obs(2, streams=8, bp=3),
        obs(2, streams=8, rejected=4),
    ):
        d = decide(overloaded, POLICY, History(), NOW)
        assert (d.action, d.to_replicas) == ("up", 3), d
    d = decide(obs(2, streams=8, bp=3), POLICY, History(), NOW)
    assert "3 backpressure events" in d.reason
    # A pod still starting (3 asked, 2 ready): it will take load; do not add another yet.
    d = decide(obs(3, streams=8, scraped=2, bp=3), POLICY, History(), NOW)
    assert (d.action, d.code) == ("hold", "WaitingForPods")


def test_bounds_and_zero() -> None:
    assert decide(obs(0, 0, scraped=0), POLICY, History(), NOW).to_replicas == 1
    assert decide(obs(12, 0), POLICY, History(last_scale_down=NOW), NOW).to_replicas == 10
    d = decide(obs(1, 0, scraped=0), POLICY, History(), NOW)
    assert (d.action, d.code) == ("hold", "NoReadyPods")
    from_zero = Policy(min_replicas=0, max_replicas=4, streams_per_pod=10)
    d = decide(obs(0, 0, scraped=0), from_zero, History(), NOW)
    assert (d.action, d.code) == ("hold", "ScaledToZero")
    d = decide(obs(0, 0, scraped=0, activation=True), from_zero, History(), NOW)
    assert (d.action, d.to_replicas, d.code) == ("up", 1, "Activated")
    # An idle pool with minReplicas 0 goes back to zero after the cooldown.
    d = decide(obs(1, 0), from_zero, History(), NOW)
    assert (d.action, d.to_replicas) == ("down", 0)


def test_shipped_policy_per_device() -> None:
    tokens = {"authTokensSecretRef": {"name": "t"}}
    gpu = policy_of(parse_pool_spec(tokens))
    cpu = policy_of(parse_pool_spec({**tokens, "asr": {"device": "cpu"}}))
    assert (gpu.streams_per_pod, cpu.streams_per_pod) == (60, 3)
    explicit = policy_of(parse_pool_spec({**tokens, "autoscaling": {"maxStreamsPerPod": 80}}))
    assert explicit.streams_per_pod == 80
    assert gpu.target_per_pod == 60 * gpu.target_utilization


@given(
    current=st.integers(1, 10),
    streams=st.floats(0, 500),
    refused=st.floats(0, 500),
    unreachable=st.integers(0, 3),
    bp=st.integers(0, 5),
    since_up=st.floats(0, 1000),
    since_down=st.floats(0, 1000),
)
def test_properties(
    current: int, streams: float, refused: float, unreachable: int, bp: int, since_up: float, since_down: float
) -> None:
    scraped = max(0, current - unreachable)
    o = obs(current, streams, refused=refused, scraped=scraped, unreachable=min(unreachable, current), bp=bp)
    d: Decision = decide(o, POLICY, History(NOW - since_up, NOW - since_down), NOW)
    assert POLICY.min_replicas <= d.to_replicas <= POLICY.max_replicas
    if d.action == "down":
        # Never shrinks on partial data, under overload or with streams waiting, never below what
        # the streams need, never by more than one step.
        assert o.pods_unreachable == 0 and bp == 0 and refused == 0
        assert d.to_replicas >= current - POLICY.scale_down_step
        assert d.to_replicas >= math.ceil(streams / POLICY.target_per_pod - 1e-9)
    if d.action == "up":
        assert d.to_replicas > current
    if d.action == "hold":
        assert d.to_replicas == current


def test_observe_sums_pods_and_counts_counter_deltas() -> None:
    samples = {
        "a": PodMetrics(in_flight=3, queue_depth=1, streams=4, backpressure={"high": 5, "low": 9}, streams_refused=7),
        "b": PodMetrics(in_flight=2, streams=3, backpressure={"critical": 1}, streams_refused=50, overload_rejected=2),
        "c": None,
    }
    previous = {"a": {"backpressure:high": 2, "backpressure:low": 1, "streams_refused": 4, "overload_rejected": 0}}
    rnd = observe(samples, previous, current_replicas=3, min_severity="high", interval_s=15)
    # b is new: its counters hold its history, not this interval's.
    assert rnd.observation == Observation(
        current_replicas=3,
        pods_scraped=2,
        pods_unreachable=1,
        streams=7,
        streams_refused=3,
        interval_s=15,
        in_flight=5,
        queue_depth=1,
        backpressure_events=3,
        overload_rejections=0,
    )
    assert rnd.counters["b"] == {"backpressure:critical": 1, "streams_refused": 50, "overload_rejected": 2}
    # A restarted pod (counter went down): its new value is all since the restart.
    again = observe(
        {"b": PodMetrics(in_flight=0, streams_refused=5)}, rnd.counters, current_replicas=1, min_severity="high"
    )
    assert again.observation.streams_refused == 5
