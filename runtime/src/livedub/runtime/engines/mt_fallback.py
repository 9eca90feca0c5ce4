"""Primary MT (DeepL) with an embedded fallback (Apertium) and a circuit breaker between them.

A live broadcast must keep talking when DeepL does not answer: a dubbed fragment in literal
rule-based Spanish beats a gap. But without a breaker every fragment of an outage first spends the
whole DeepL deadline timing out, and the stream falls further behind with each one. So:

* **closed** — every call goes to the primary. ``failure_threshold`` *consecutive* retryable failures
  (timeouts, 5xx, 429, connection errors — after the primary's own retries) open the circuit.
* **open** — calls go straight to the fallback, costing nothing on DeepL, for ``recovery_s``.
* **half-open** — then exactly one call (the probe) tries the primary while the others keep using the
  fallback. A probe that gets any answer from DeepL closes the circuit; one that fails re-opens it for
  another ``recovery_s``.

Which failures fall back (the decision, documented in docs/deepl.md):

* retryable (load/outage) → fallback, counted toward the breaker;
* QUOTA_EXCEEDED (456) → fallback by default (``fallback_on_quota``): the quota will not come back for
  days, and a broadcaster prefers a dubbed stream to silence. It opens the circuit at once, for
  ``quota_recovery_s`` (default 10 min), so DeepL is re-probed rarely; logged at ERROR each time;
* AUTH_FAILED (403) → raised, never hidden: a wrong key is an operator error to fix now, and silently
  serving lower-quality MT for weeks would be worse;
* other non-retryable errors (bad input, UNSUPPORTED_LANGUAGE) → raised: the same input would fail
  the same way, and they say nothing about DeepL's health.

Pairs the primary lacks but the fallback has are routed to the fallback directly. Counters
(``fallback_total``, ``fallback_by_reason``, ``primary_failures_total``, ``circuit_opened_total``) are
plain attributes the runtime exports as metrics; ``on_fallback(reason)`` is called on each fallback
(e.g. ``lambda reason: metrics.mt_fallbacks.inc()``).
"""

from __future__ import annotations

import logging
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import StrEnum

from livedub.runtime.engines.base import TranslationOptions, Translator
from livedub.runtime.errors import EngineError, ErrorCode

log = logging.getLogger(__name__)


class CircuitState(StrEnum):
    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half_open"


@dataclass(frozen=True, slots=True)
class FallbackStats:
    state: CircuitState
    fallback_total: int
    fallback_by_reason: dict[str, int] = field(default_factory=dict)
    primary_failures_total: int = 0
    fallback_failures_total: int = 0
    circuit_opened_total: int = 0


class FallbackTranslator(Translator):
    """Use ``primary``; on a retryable failure (or quota) use ``fallback``; break the circuit on outages."""

    def __init__(
        self,
        primary: Translator,
        fallback: Translator,
        *,
        failure_threshold: int = 3,
        recovery_s: float = 30.0,
        quota_recovery_s: float = 600.0,
        fallback_on_quota: bool = True,
        on_fallback: Callable[[str], None] | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if failure_threshold < 1:
            raise ValueError("failure_threshold must be >= 1")
        self.primary = primary
        self.fallback = fallback
        self.name = f"{primary.name}+{fallback.name}"
        self.failure_threshold = failure_threshold
        self.recovery_s = recovery_s
        self.quota_recovery_s = quota_recovery_s
        self.fallback_on_quota = fallback_on_quota
        self.on_fallback = on_fallback
        self._clock = clock
        self._lock = threading.Lock()
        self._state = CircuitState.CLOSED
        self._consecutive_failures = 0
        self._opened_at = 0.0
        self._open_for = recovery_s
        # Metrics.
        self.fallback_total = 0
        self.fallback_by_reason: Counter[str] = Counter()
        self.primary_failures_total = 0
        self.fallback_failures_total = 0
        self.circuit_opened_total = 0

    # --- Translator interface ----------------------------------------------------------------
    @property
    def pairs(self) -> frozenset[tuple[str, str]]:
        return self.primary.pairs | self.fallback.pairs

    def supports(self, source: str, target: str) -> bool:
        return self.primary.supports(source, target) or self.fallback.supports(source, target)

    def translate(
        self,
        text: str,
        *,
        source: str,
        target: str,
        context: str | None = None,
        options: TranslationOptions | None = None,
    ) -> str:
        def use_fallback(reason: str, primary_error: EngineError | None = None) -> str:
            return self._use_fallback(reason, primary_error, text, source, target, context, options)

        fallback_ok = self.fallback.supports(source, target)
        if not self.primary.supports(source, target):
            if fallback_ok:
                return use_fallback("unsupported_pair")
            raise EngineError(
                ErrorCode.UNSUPPORTED_LANGUAGE,
                f"no translation engine has {source}->{target}",
                retryable=False,
            )

        use_primary, probe = self._acquire()
        if not use_primary:
            if fallback_ok:
                return use_fallback("circuit_open")
            raise EngineError(
                ErrorCode.SERVICE_UNAVAILABLE,
                f"{self.primary.name} is failing (circuit open) and {self.fallback.name} has no {source}->{target}",
                retryable=True,
            )

        try:
            result = self.primary.translate(text, source=source, target=target, context=context, options=options)
        except EngineError as exc:
            self._on_primary_error(exc, probe)
            falls_back = exc.retryable or (exc.code is ErrorCode.QUOTA_EXCEEDED and self.fallback_on_quota)
            if exc.code is ErrorCode.AUTH_FAILED or not falls_back or not fallback_ok:
                raise
            return use_fallback(exc.code.value.lower(), exc)
        except BaseException:
            # A bug, not an outage: do not count it, but never leave a probe slot taken.
            if probe:
                self._reopen(self.recovery_s)
            raise
        self._on_primary_success()
        return result

    # --- observability -----------------------------------------------------------------------
    @property
    def state(self) -> CircuitState:
        with self._lock:
            return self._state

    @property
    def active_engine(self) -> str:
        """The engine new fragments go to right now (for logs and ``stream:ready``)."""
        return self.fallback.name if self.state is CircuitState.OPEN else self.primary.name

    def stats(self) -> FallbackStats:
        with self._lock:
            return FallbackStats(
                self._state,
                self.fallback_total,
                dict(self.fallback_by_reason),
                self.primary_failures_total,
                self.fallback_failures_total,
                self.circuit_opened_total,
            )

    # --- the breaker -------------------------------------------------------------------------
    def _acquire(self) -> tuple[bool, bool]:
        """(call the primary?, is this call the half-open probe?)"""
        with self._lock:
            if self._state is CircuitState.CLOSED:
                return True, False
            if self._state is CircuitState.OPEN and self._clock() - self._opened_at >= self._open_for:
                self._state = CircuitState.HALF_OPEN
                log.info("%s: circuit half-open, probing", self.primary.name)
                return True, True
            return False, False  # open, or half-open with the probe already in flight

    def _on_primary_error(self, exc: EngineError, probe: bool) -> None:
        quota = exc.code is ErrorCode.QUOTA_EXCEEDED
        if not exc.retryable and not quota:
            # DeepL answered (bad input, auth): it is reachable, so this is not an outage.
            self._on_primary_success()
            return
        with self._lock:
            self.primary_failures_total += 1
            self._consecutive_failures += 1
            should_open = (
                quota
                or probe
                or (self._state is CircuitState.CLOSED and self._consecutive_failures >= self.failure_threshold)
            )
        if quota:
            log.error("%s: %s — using %s", self.primary.name, exc.message, self.fallback.name)
        else:
            log.warning("%s failed: %s (%s)", self.primary.name, exc.code, exc.message)
        if should_open:
            self._reopen(self.quota_recovery_s if quota else self.recovery_s)

    def _reopen(self, seconds: float) -> None:
        with self._lock:
            was_open = self._state is CircuitState.OPEN
            self._state = CircuitState.OPEN
            self._opened_at = self._clock()
            self._open_for = seconds
            if not was_open:
                self.circuit_opened_total += 1
        log.warning("%s: circuit open for %.0fs — translating with %s", self.primary.name, seconds, self.fallback.name)

    def _on_primary_success(self) -> None:
        with self._lock:
            self._consecutive_failures = 0
            if self._state is CircuitState.CLOSED:
                return
            self._state = CircuitState.CLOSED
        log.info("%s: answering again, circuit closed", self.primary.name)

    def _use_fallback(
        self,
        reason: str,
        primary_error: EngineError | None,
        text: str,
        source: str,
        target: str,
        context: str | None,
        options: TranslationOptions | None,
    ) -> str:
        with self._lock:
            self.fallback_total += 1
            self.fallback_by_reason[reason] += 1
        if self.on_fallback is not None:
            try:
                self.on_fallback(reason)
            except Exception:  # a metrics hook must never fail a fragment
                log.exception("on_fallback hook failed")
        log.debug("translating with %s (%s)", self.fallback.name, reason)
        try:
            return self.fallback.translate(text, source=source, target=target, context=context, options=options)
        except EngineError as exc:
            with self._lock:
                self.fallback_failures_total += 1
            if primary_error is None:
                raise
            # The client's retry decision should follow the primary's failure, which caused this.
            log.warning("%s fallback failed too: %s", self.fallback.name, exc.message)
            raise primary_error from primary_error.__cause__
