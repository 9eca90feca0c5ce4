"""The rebalance plan's bounds (scaling/rebalance.py): which pods shed (rebalanceAbove), room,
per-tick cap, draining pods, hysteresis."""

from dataclasses import replace

from livedub.operator.scaling.decide import Policy
from livedub.operator.scaling.policy import policy_of
from livedub.operator.scaling.rebalance import PodLoad, RebalancePlan, ShedMark, excess, plan
from livedub.operator.spec import parse_pool_spec

# A target of 8 streams per pod, over it beyond 8.8; most tests use rebalanceAbove: target, where the
# band decides, and the capacity tests below show what the default changes.
POLICY = Policy(
    min_replicas=1, max_replicas=10, streams_per_pod=10, target_utilization=0.8, tolerance=0.1, rebalance_above="target"
)
CAPACITY = replace(POLICY, rebalance_above="capacity")


def _plan(
    loads: dict[str, PodLoad | None],
    pending: float = 0.0,
    cap: int = 10,
    now: float = 1000.0,
    policy: Policy = POLICY,
) -> RebalancePlan:
    return plan(loads, policy, pending=pending, now=now, max_per_tick=cap, timeout_s=180)


def test_the_shipped_default_sheds_above_capacity_and_the_spec_can_ask_for_the_target() -> None:
    base = {"authTokensSecretRef": {"name": "workers"}}
    assert policy_of(parse_pool_spec(base)).rebalance_above == "capacity"
    spec = parse_pool_spec({**base, "autoscaling": {"rebalanceAbove": "target"}})
    assert policy_of(spec).rebalance_above == "target"


def test_by_default_a_pod_that_keeps_up_within_its_capacity_is_left_alone() -> None:
    # Full (10 of 10) and keeping up: no stream of it moves, even with room elsewhere.
    assert excess(PodLoad(10.0, in_flight=4.0), CAPACITY) == 0
    assert _plan({"full": PodLoad(10.0, in_flight=4.0), "empty": PodLoad(0.0)}, policy=CAPACITY).marks == {}
    # Past its capacity (maxStreamsPerPod lowered, or a race admitted more): down to the target, not to 10.
    assert excess(PodLoad(11.0), CAPACITY) == 3
    result = _plan({"over": PodLoad(12.0), "empty": PodLoad(0.0)}, policy=CAPACITY)
    assert result.marks["over"] == ShedMark(4, 12.0, 1000.0)


def test_by_default_a_pod_that_falls_behind_still_sheds() -> None:
    # 9 streams (within capacity) at 3 in flight per stream against a limit of 2: it keeps up with 6.
    behind = PodLoad(9.0, in_flight=27.0)
    assert excess(behind, CAPACITY) == 3
    assert _plan({"behind": behind, "empty": PodLoad(0.0)}, policy=CAPACITY).marks["behind"].streams == 3


def test_a_pod_over_the_band_sheds_down_to_the_target_not_to_the_band() -> None:
    assert excess(PodLoad(8.0), POLICY) == 0
    assert excess(PodLoad(8.8), POLICY) == 0  # within the band: no request for one stream more
    assert excess(PodLoad(9.0), POLICY) == 1
    assert excess(PodLoad(10.0), POLICY) == 2


def test_a_pod_that_falls_behind_sheds_what_it_cannot_keep_up_with() -> None:
    # 6 streams, 4 in flight per stream against a limit of 2: it keeps up with half of them.
    assert excess(PodLoad(6.0, in_flight=24.0), POLICY) == 3


def test_room_bounds_the_request_and_waiting_streams_take_room_first() -> None:
    loads: dict[str, PodLoad | None] = {"busy": PodLoad(10.0), "a": PodLoad(7.0), "b": PodLoad(8.0)}
    assert _plan(loads).marks["busy"].streams == 1  # a has room for one
    assert _plan(loads, pending=1).marks == {}  # the waiting stream takes it


def test_the_cap_bounds_a_tick_across_the_pool() -> None:
    loads: dict[str, PodLoad | None] = {"x": PodLoad(10.0), "y": PodLoad(10.0), "empty": PodLoad(0.0)}
    result = _plan(loads, cap=3)
    assert result.asked == 3 and set(result.marks) <= {"x", "y"}


def test_a_draining_pod_is_never_marked_and_loses_its_mark() -> None:
    mark = ShedMark(2, 10, 900.0)
    loads: dict[str, PodLoad | None] = {
        "busy": PodLoad(10.0, draining=True, mark=mark, marked=True),
        "other": PodLoad(11.0, draining=True),
        "empty": PodLoad(0.0),
    }
    result = _plan(loads)
    assert result.marks == {} and result.clears == {"busy": "the pod is draining"}


def test_a_standing_request_is_room_already_promised() -> None:
    loads: dict[str, PodLoad | None] = {
        "busy": PodLoad(10.0, mark=ShedMark(2, 10, 990.0), marked=True),
        "hot": PodLoad(10.0),
        "a": PodLoad(6.0),
    }
    result = _plan(loads)
    assert result.clears == {} and result.marks == {}  # a's 2 free places are busy's


def test_a_mark_ends_when_shed_or_timed_out_and_survives_an_unknown_load() -> None:
    mark = ShedMark(2, 10, 900.0)
    shed: dict[str, PodLoad | None] = {
        "busy": PodLoad(9.0, mark=ShedMark(1, 10, 900.0), marked=True),
        "a": PodLoad(8.0),
    }
    assert _plan(shed).clears == {"busy": "done"}
    # Still over its target with room elsewhere again: a new request (a new value) replaces it.
    shed["a"] = PodLoad(2.0)
    again = _plan(shed)
    assert again.clears == {} and again.marks["busy"] == ShedMark(1, 9.0, 1000.0)
    silent: dict[str, PodLoad | None] = {"busy": PodLoad(0.0, mark=mark, marked=True, known=False)}
    assert _plan(silent).clears == {}
    assert _plan(silent, now=900.0 + 180).clears == {"busy": "timeout"}


def test_the_value_round_trips_and_a_hand_written_mark_is_taken_off() -> None:
    mark = ShedMark(3, 60, 1796234400.0)
    assert mark.value() == "3;from=60;at=1796234400" and ShedMark.parse(mark.value()) == mark
    assert ShedMark.parse("3") is None
    loads: dict[str, PodLoad | None] = {"p": PodLoad(5.0, marked=True)}
    assert _plan(loads).clears == {"p": "not a mark this operator wrote"}


def test_a_pod_just_below_the_target_is_no_receiver() -> None:
    # The Service spreads moved streams over every pod with room: one near its target would be pushed
    # over and shed in turn. Receivers are below target x (1 - tolerance) = 7.2.
    assert _plan({"busy": PodLoad(10.0), "near": PodLoad(7.5)}).marks == {}
    assert _plan({"busy": PodLoad(10.0), "low": PodLoad(7.0)}).marks["busy"].streams == 1
