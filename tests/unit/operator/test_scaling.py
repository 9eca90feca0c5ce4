"""The autoscaler's decision: pure maths, every branch, plus properties over random inputs."""

import math

from hypothesis import given
from hypothesis import strategies as st

from livedub.operator.scaling.decide import Decision, History, Observation, Policy, decide
from livedub.operator.scaling.metrics import PodMetrics
from livedub.operator.scaling.observe import observe

POLICY = Policy(
    min_replicas=1,
    max_replicas=10,
    target_per_pod=4,
    tolerance=0.1,
    scale_up_cooldown_s=30,
    scale_down_cooldown_s=300,
    scale_down_step=1,
)
NOW = 10_000.0


def obs(
    current: int, in_flight: float, *, queue: float = 0, scraped: int | None = None, unreachable: int = 0, bp: int = 0
) -> Observation:
    return Observation(
        current_replicas=current,
        pods_scraped=current if scraped is None else scraped,
        pods_unreachable=unreachable,
        in_flight=in_flight,
        queue_depth=queue,
        backpressure_events=bp,
    )


def test_scales_up_to_cover_load_including_queue() -> None:
    d = decide(obs(2, in_flight=8, queue=8), POLICY, History(), NOW)
    assert (d.action, d.to_replicas, d.code) == ("up", 4, "ScaledUp")
    assert "load 16" in d.reason


def test_within_tolerance_holds() -> None:
    d = decide(obs(2, in_flight=8.5), POLICY, History(), NOW)  # ratio 1.06 < 1.1
    assert (d.action, d.code) == ("hold", "WithinTolerance")


def test_hysteresis_band_blocks_small_scale_down() -> None:
    # 3 pods, load 9.5: ceil(9.5/4)=3 -> nothing; load 7.9 -> wants 2, ratio .66 -> down.
    assert decide(obs(3, 9.5), POLICY, History(), NOW).action == "hold"
    assert decide(obs(3, 7.9), POLICY, History(), NOW).to_replicas == 2


def test_scale_up_respects_max_and_cooldown() -> None:
    d = decide(obs(9, in_flight=400), POLICY, History(), NOW)
    assert d.to_replicas == 10
    d = decide(obs(10, in_flight=400), POLICY, History(), NOW)
    assert (d.action, d.code) == ("hold", "AtMaxReplicas")
    d = decide(obs(3, in_flight=40), POLICY, History(last_scale_up=NOW - 10), NOW)
    assert (d.action, d.code) == ("hold", "ScaleUpCooldown")
    assert "20s left" in d.reason
    assert decide(obs(3, in_flight=40), POLICY, History(last_scale_up=NOW - 31), NOW).action == "up"


def test_scale_down_one_step_after_cooldown_from_any_change() -> None:
    idle = obs(5, in_flight=0)
    d = decide(idle, POLICY, History(), NOW)
    assert (d.action, d.to_replicas, d.code) == ("down", 4, "ScaledDown")
    # A recent scale-up also blocks a scale-down: a pool that just grew must not shrink at once.
    d = decide(idle, POLICY, History(last_scale_up=NOW - 100), NOW)
    assert (d.action, d.code) == ("hold", "ScaleDownCooldown")
    d = decide(idle, POLICY, History(last_scale_down=NOW - 299), NOW)
    assert d.action == "hold"
    assert decide(idle, POLICY, History(last_scale_down=NOW - 301), NOW).action == "down"


def test_scale_down_step_and_floor() -> None:
    policy = Policy(min_replicas=2, max_replicas=10, target_per_pod=4, scale_down_step=3)
    assert decide(obs(8, in_flight=0), policy, History(), NOW).to_replicas == 5
    assert decide(obs(3, in_flight=0), policy, History(), NOW).to_replicas == 2
    d = decide(obs(2, in_flight=0), policy, History(), NOW)
    assert (d.action, d.code) == ("hold", "AtMinReplicas")


def test_unreachable_pods_count_at_target_and_block_scale_down() -> None:
    # 4 pods, 3 answer idle, 1 silent: never shrink on partial data.
    d = decide(obs(4, in_flight=0, scraped=3, unreachable=1), POLICY, History(), NOW)
    assert (d.action, d.code) == ("hold", "PodsUnreachable")
    # A silent pod neither inflates the load: 1 answering at 4 + 1 silent (counted 4) = 8 over 2 pods.
    d = decide(obs(2, in_flight=4, scraped=1, unreachable=1), POLICY, History(), NOW)
    assert d.code == "WithinTolerance"


def test_backpressure_forces_one_more_pod_even_when_idle() -> None:
    d = decide(obs(2, in_flight=1, bp=3), POLICY, History(), NOW)
    assert (d.action, d.to_replicas) == ("up", 3)
    assert "3 backpressure events" in d.reason


def test_bounds_are_enforced_first() -> None:
    assert decide(obs(0, 0, scraped=0), POLICY, History(), NOW).to_replicas == 1
    assert decide(obs(12, 0), POLICY, History(last_scale_down=NOW), NOW).to_replicas == 10
    d = decide(obs(1, 0, scraped=0), POLICY, History(), NOW)
    assert (d.action, d.code) == ("hold", "NoReadyPods")


@given(
    current=st.integers(1, 10),
    in_flight=st.floats(0, 500),
    queue=st.floats(0, 500),
    unreachable=st.integers(0, 3),
    bp=st.integers(0, 5),
    since_up=st.floats(0, 1000),
    since_down=st.floats(0, 1000),
)
def test_properties(
    current: int, in_flight: float, queue: float, unreachable: int, bp: int, since_up: float, since_down: float
) -> None:
    scraped = max(0, current - unreachable)
    o = obs(current, in_flight, queue=queue, scraped=scraped, unreachable=min(unreachable, current), bp=bp)
    d: Decision = decide(o, POLICY, History(NOW - since_up, NOW - since_down), NOW)
    assert POLICY.min_replicas <= d.to_replicas <= POLICY.max_replicas
    if d.action == "down":
        # Never shrinks on partial data or under backpressure, never below what the load needs,
        # never by more than one step.
        assert o.pods_unreachable == 0 and bp == 0
        assert d.to_replicas >= current - POLICY.scale_down_step
        assert d.to_replicas >= math.ceil((in_flight + queue) / POLICY.target_per_pod)
    if d.action == "up":
        assert d.to_replicas > current
    if d.action == "hold":
        assert d.to_replicas == current


def test_observe_sums_pods_and_counts_backpressure_deltas() -> None:
    samples = {
        "a": PodMetrics(in_flight=3, queue_depth=1, backpressure={"high": 5, "low": 9}),
        "b": PodMetrics(in_flight=2, backpressure={"critical": 1}),
        "c": None,
    }
    rnd = observe(samples, {"a": {"high": 2, "low": 1}}, current_replicas=3, min_severity="high")
    assert rnd.observation == Observation(
        current_replicas=3, pods_scraped=2, pods_unreachable=1, in_flight=5, queue_depth=1, backpressure_events=3
    )
    assert rnd.counters == {"a": {"high": 5, "low": 9}, "b": {"critical": 1}}
