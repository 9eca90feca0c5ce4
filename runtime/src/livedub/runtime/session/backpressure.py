"""Backpressure: map a stream's in-flight count to the guide's severity and an action.

Thresholds are the guide's ``BACKPRESSURE_THRESHOLD_*`` variables. An event is emitted only when
the severity *changes* (rising or falling), so a worker is told once, not per fragment, and learns
when it may speed up again (severity ``none``, action ``resume``).
"""

from __future__ import annotations

from dataclasses import dataclass

from livedub.runtime.protocol.events import BackpressureAction, BackpressureSeverity

ACTIONS = {
    BackpressureSeverity.NONE: BackpressureAction.RESUME,
    BackpressureSeverity.LOW: BackpressureAction.MONITOR,
    BackpressureSeverity.MEDIUM: BackpressureAction.SLOW_DOWN,
    BackpressureSeverity.HIGH: BackpressureAction.PAUSE,
    BackpressureSeverity.CRITICAL: BackpressureAction.REJECT,
}


@dataclass(frozen=True, slots=True)
class Thresholds:
    low: int
    medium: int
    high: int
    critical: int

    def severity(self, inflight: int) -> BackpressureSeverity:
        if inflight >= self.critical:
            return BackpressureSeverity.CRITICAL
        if inflight >= self.high:
            return BackpressureSeverity.HIGH
        if inflight >= self.medium:
            return BackpressureSeverity.MEDIUM
        if inflight >= self.low:
            return BackpressureSeverity.LOW
        return BackpressureSeverity.NONE


class BackpressureTracker:
    """Remembers the last severity told to the client; ``update`` returns a new one or None."""

    def __init__(self, thresholds: Thresholds) -> None:
        self.thresholds = thresholds
        self.current = BackpressureSeverity.NONE

    def update(self, inflight: int) -> BackpressureSeverity | None:
        severity = self.thresholds.severity(inflight)
        if severity == self.current:
            return None
        self.current = severity
        return severity

    def would_reject(self, inflight: int) -> bool:
        """Admitting one more fragment would reach the critical threshold."""
        return inflight + 1 > self.thresholds.critical
