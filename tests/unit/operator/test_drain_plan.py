"""The gentle scale-down's pure planner: which pods drain, when they go, when the drain is undone."""

from livedub.operator.scaling.decide import Decision, Observation, Policy
from livedub.operator.scaling.drain import DrainState, least_loaded, outcome, plan

POLICY = Policy(min_replicas=1, max_replicas=10, streams_per_pod=4, target_utilization=1.0)


def obs(replicas: int, streams: float) -> Observation:
    return Observation(current_replicas=replicas, pods_scraped=replicas, pods_unreachable=0, streams=streams)


DOWN = Decision("down", 3, 2, "ScaledDown", "8 streams over 3 pods")
HOLD = Decision("hold", 3, 3, "WithinTolerance", "")


def test_start_picks_the_least_loaded_answering_pods() -> None:
    streams = {"a": 4.0, "b": 1.0, "c": None, "d": 1.0}
    assert least_loaded(streams, 1) == ("b",)  # name breaks the tie; an unanswered pod is never chosen
    step = plan(
        DOWN, obs(3, 8), POLICY, None, {"a": 4.0, "b": 1.0, "c": 3.0}, existing=["a", "b", "c"], now=0, grace_s=60
    )
    assert (step.kind, step.pods) == ("start", ("b",))
    assert outcome(DOWN, step).action == "hold"  # replicas untouched while it drains


def test_bounds_apply_at_once_without_a_drain() -> None:
    above = Decision("down", 5, 4, "AboveMaxReplicas", "")
    step = plan(above, obs(5, 0), POLICY, None, {}, existing=[], now=0, grace_s=60)
    assert step.kind == "none" and outcome(above, step) == above


def test_an_unanswering_drained_pod_waits_for_the_grace() -> None:
    state = DrainState(("b",), since=100.0)
    wait = plan(
        HOLD, obs(3, 7), POLICY, state, {"a": 4, "b": None, "c": 3}, existing=["a", "b", "c"], now=130, grace_s=60
    )
    assert wait.kind == "wait" and "1 not answering" in wait.reason
    done = plan(
        HOLD, obs(3, 7), POLICY, state, {"a": 4, "b": None, "c": 3}, existing=["a", "b", "c"], now=160, grace_s=60
    )
    assert (done.kind, done.to_replicas) == ("finish", 2)
    assert outcome(HOLD, done).action == "down"


def test_a_raised_floor_or_vanished_pods_undo_the_drain() -> None:
    state = DrainState(("b",), since=100.0)
    floor = Policy(min_replicas=3, max_replicas=10, streams_per_pod=4, target_utilization=1.0)
    step = plan(HOLD, obs(3, 7), floor, state, {"a": 4, "b": 0, "c": 3}, existing=["a", "b", "c"], now=110, grace_s=60)
    assert (step.kind, step.code) == ("cancel", "DrainCancelled") and "minReplicas is 3" in step.reason
    gone = plan(HOLD, obs(2, 7), POLICY, state, {"a": 4, "c": 3}, existing=["a", "c"], now=110, grace_s=60)
    assert (gone.kind, gone.code) == ("cancel", "DrainAbandoned")


def test_a_scale_up_while_draining_undrains_and_adds_only_what_is_missing() -> None:
    state = DrainState(("b",), since=100.0)
    up = Decision("up", 3, 4, "ScaledUp", "14 streams over 3 pods")
    step = plan(up, obs(3, 14), POLICY, state, {"a": 4, "b": 6, "c": 4}, existing=["a", "b", "c"], now=110, grace_s=60)
    assert (step.kind, step.to_replicas) == ("cancel", 4)
    final = outcome(up, step)
    assert (final.action, final.from_replicas, final.to_replicas) == ("up", 3, 4)
