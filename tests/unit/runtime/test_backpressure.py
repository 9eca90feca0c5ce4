from livedub.runtime.protocol.events import BackpressureSeverity as S
from livedub.runtime.session.backpressure import ACTIONS, BackpressureTracker, Thresholds

T = Thresholds(low=3, medium=5, high=7, critical=10)


def test_severity_bands():
    assert [T.severity(n) for n in (0, 2, 3, 4, 5, 7, 9, 10, 50)] == [
        S.NONE,
        S.NONE,
        S.LOW,
        S.LOW,
        S.MEDIUM,
        S.HIGH,
        S.HIGH,
        S.CRITICAL,
        S.CRITICAL,
    ]


def test_tracker_reports_changes_only_both_ways():
    tracker = BackpressureTracker(T)
    seen = [tracker.update(n) for n in (1, 3, 4, 5, 5, 2, 0)]
    assert seen == [None, S.LOW, None, S.MEDIUM, None, S.NONE, None]


def test_reject_at_critical():
    tracker = BackpressureTracker(T)
    assert not tracker.would_reject(9)
    assert tracker.would_reject(10)


def test_every_severity_has_an_action():
    assert set(ACTIONS) == set(S)
    assert ACTIONS[S.MEDIUM] == "slow_down"  # the guide's example pairs medium with slow_down
