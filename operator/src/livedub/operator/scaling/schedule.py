"""Warm floors from schedules: the pool's minReplicas at a given moment (pure: the clock is an argument).

A schedule is active from a firing of its ``start`` cron until the next firing of its ``end`` cron —
KEDA's cron scaler's model, so operators who know one know the other. The floor is the highest
``minReplicas`` among active schedules, never below the pool's own ``minReplicas`` and never above
``maxReplicas``; the decision code scales up to it as to any floor, and the gentle scale-down never
goes below it.
"""

import datetime
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from zoneinfo import ZoneInfo

from croniter import CroniterError, croniter

from livedub.operator.spec import Schedule

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Floor:
    replicas: int
    # What set it, for the decision's reason: "minReplicas" or "schedule <name>".
    source: str


def _last(expr: str, at: datetime.datetime) -> datetime.datetime | None:
    """The latest firing at or before ``at`` (croniter's get_prev is strictly before its start), or
    None when there is none croniter can find (the spec rejects expressions that never fire; this
    keeps one that slips through from stopping the pool's scaling on every tick)."""
    try:
        previous: datetime.datetime = croniter(expr, at + datetime.timedelta(seconds=1)).get_prev(datetime.datetime)
    except CroniterError:
        log.warning("cron expression %r has no firing before %s: schedule ignored", expr, at.isoformat())
        return None
    return previous


def is_active(schedule: Schedule, now: float) -> bool:
    at = datetime.datetime.fromtimestamp(now, ZoneInfo(schedule.timezone))
    # Active when the latest start fired after the latest end (a start and an end at the same minute:
    # the window has just closed). Cron times are local wall-clock times, DST included: a start in
    # the hour skipped at spring-forward fires at the jump (croniter, like Vixie cron). A schedule
    # whose start or end cannot be computed is not active: scaling goes on from the other floors.
    start, end = _last(schedule.start, at), _last(schedule.end, at)
    return start is not None and end is not None and start > end


def floor_at(min_replicas: int, max_replicas: int, schedules: Sequence[Schedule], now: float) -> Floor:
    floor = Floor(min_replicas, "minReplicas")
    for i, schedule in enumerate(schedules):
        if schedule.min_replicas > floor.replicas and is_active(schedule, now):
            floor = Floor(schedule.min_replicas, f"schedule {schedule.name or i}")
    return Floor(min(floor.replicas, max_replicas), floor.source)
