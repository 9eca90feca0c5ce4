"""Warm-floor schedules: when a window is active, what floor it sets, and bad input as a clear error."""

import datetime
from zoneinfo import ZoneInfo

import pytest

from livedub.operator.errors import InvalidSpecError
from livedub.operator.scaling.decide import History, Observation, decide
from livedub.operator.scaling.policy import policy_of
from livedub.operator.scaling.schedule import floor_at, is_active
from livedub.operator.spec import Schedule, parse_pool_spec

MADRID = ZoneInfo("Europe/Madrid")


def at(hour: int, minute: int, day: int = 2, tz: ZoneInfo = MADRID) -> float:
    return datetime.datetime(2026, 12, day, hour, minute, tzinfo=tz).timestamp()  # 2026-12-02: a Wednesday


NEWS = Schedule(name="news", start="50 18 * * 1-5", end="45 19 * * 1-5", timezone="Europe/Madrid", min_replicas=4)


@pytest.mark.parametrize(
    ("hour", "minute", "active"),
    [(18, 49, False), (18, 50, True), (19, 20, True), (19, 44, True), (19, 45, False), (23, 0, False)],
)
def test_window_opens_at_start_and_closes_at_end_in_local_time(hour: int, minute: int, active: bool) -> None:
    assert is_active(NEWS, at(hour, minute)) is active


def test_timezone_is_honoured_and_weekends_are_off() -> None:
    # 18:55 in Madrid is 17:55 UTC in December: active; 18:55 UTC is 19:55 in Madrid: closed.
    assert is_active(NEWS, at(17, 55, tz=ZoneInfo("UTC")))
    assert not is_active(NEWS, at(18, 55, tz=ZoneInfo("UTC")))
    assert not is_active(NEWS, at(19, 0, day=5))  # Saturday


def test_floor_is_the_highest_active_one_within_bounds() -> None:
    late = Schedule(name="late", start="0 19 * * *", end="30 19 * * *", timezone="Europe/Madrid", min_replicas=9)
    assert floor_at(1, 8, [NEWS, late], at(19, 10)) == floor_at(1, 8, [late, NEWS], at(19, 10))
    floor = floor_at(1, 8, [NEWS, late], at(19, 10))
    assert (floor.replicas, floor.source) == (8, "schedule late")  # capped at maxReplicas
    assert floor_at(1, 8, [NEWS, late], at(19, 40)).source == "schedule news"
    assert floor_at(2, 8, [NEWS, late], at(12, 0)).replicas == 2


def test_the_decision_scales_up_to_an_active_floor_and_never_drains_below_it() -> None:
    spec = parse_pool_spec(
        {
            "authTokensSecretRef": {"name": "w"},
            "maxReplicas": 10,
            "autoscaling": {
                "schedules": [
                    {
                        "name": "news",
                        "start": "50 18 * * 1-5",
                        "end": "45 19 * * 1-5",
                        "timezone": "Europe/Madrid",
                        "minReplicas": 4,
                    }
                ]
            },
        }
    )
    idle = Observation(current_replicas=1, pods_scraped=1, pods_unreachable=0)
    before = decide(idle, policy_of(spec, at(18, 49)), History(), at(18, 49))
    assert (before.action, before.code) == ("hold", "AtMinReplicas")
    up = decide(idle, policy_of(spec, at(18, 50)), History(), at(18, 50))
    assert (up.action, up.to_replicas, up.code) == ("up", 4, "BelowMinReplicas")
    assert "schedule news (4)" in up.reason
    busy_floor = decide(
        Observation(current_replicas=4, pods_scraped=4, pods_unreachable=0),
        policy_of(spec, at(19, 0)),
        History(),
        at(19, 0),
    )
    assert busy_floor.action == "hold" and "at schedule news (4)" in busy_floor.reason
    after = decide(
        Observation(current_replicas=4, pods_scraped=4, pods_unreachable=0),
        policy_of(spec, at(20, 0)),
        History(),
        at(20, 0),
    )
    assert after.action == "down"  # the window closed: back towards the pool's own floor


@pytest.mark.parametrize(
    ("schedule", "says"),
    [
        (
            {"start": "61 18 * * *", "end": "0 19 * * *", "minReplicas": 2},
            "start '61 18 * * *' is not a five-field cron",
        ),
        ({"start": "@hourly", "end": "0 19 * * *", "minReplicas": 2}, "start '@hourly' is not a five-field cron"),
        ({"start": "0 18 * * *", "end": "0 19 * *", "minReplicas": 2}, "end '0 19 * *' is not a five-field cron"),
        ({"start": "0 18 * * *", "end": "0 19 * * *", "timezone": "Mars/Olympus", "minReplicas": 2}, "IANA"),
        ({"start": "0 18 * * *", "end": "0 19 * * *"}, "minReplicas"),
        # Valid for croniter.is_valid, but there is no 30 February: it would fail on every tick.
        ({"start": "0 0 30 2 *", "end": "0 19 * * *", "minReplicas": 2}, "start '0 0 30 2 *' never fires"),
        ({"start": "0 18 * * *", "end": "0 0 31 4 *", "minReplicas": 2}, "end '0 0 31 4 *' never fires"),
    ],
)
def test_a_bad_schedule_is_an_invalid_spec_naming_it(schedule: dict[str, object], says: str) -> None:
    with pytest.raises(InvalidSpecError, match=r"autoscaling\.schedules\.0") as info:
        parse_pool_spec({"authTokensSecretRef": {"name": "w"}, "autoscaling": {"schedules": [schedule]}})
    assert says in str(info.value)


def test_a_leap_day_schedule_is_valid() -> None:
    Schedule(start="0 8 29 2 *", end="0 20 29 2 *", min_replicas=2)  # fires every four years


def test_a_schedule_that_cannot_be_computed_is_skipped_not_fatal() -> None:
    # One stored before the validator rejected it (model_construct skips validation, as an old object
    # the operator reads would not be re-validated by admission): the pool keeps its other floors.
    never = Schedule.model_construct(name="never", start="0 0 30 2 *", end="0 1 * * *", timezone="UTC", min_replicas=9)
    assert not is_active(never, at(12, 0))
    floor = floor_at(2, 10, [never, NEWS], at(19, 0))
    assert (floor.replicas, floor.source) == (4, "schedule news")


@pytest.mark.parametrize(
    ("hour", "minute", "utc_offset_h", "active"),
    # 2026-03-29 in Madrid: 02:00 CET jumps to 03:00 CEST; 02:30 does not exist that day.
    [(1, 59, 1, False), (3, 0, 2, True), (3, 45, 2, True), (4, 0, 2, False), (4, 30, 2, False)],
)
def test_a_start_in_the_hour_skipped_at_spring_forward_fires_at_the_jump(
    hour: int, minute: int, utc_offset_h: int, active: bool
) -> None:
    early = Schedule(name="early", start="30 2 * * *", end="0 4 * * *", timezone="Europe/Madrid", min_replicas=3)
    when = datetime.datetime(2026, 3, 29, hour, minute, tzinfo=MADRID)
    assert when.utcoffset() == datetime.timedelta(hours=utc_offset_h)  # the instant meant, not a gap time
    assert is_active(early, when.timestamp()) is active
    assert floor_at(1, 5, [early], when.timestamp()).replicas == (3 if active else 1)
