"""FallbackTranslator: which failures fall back, the circuit breaker, recovery; then the same with the
real DeepLTranslator against the local DeepL-compatible server."""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Iterator

import pytest

from fakes.deepl_server import DEFAULT_KEY, FakeDeepL
from livedub.runtime.engines.base import TranslationOptions, Translator
from livedub.runtime.engines.mt_deepl import DeepLTranslator
from livedub.runtime.engines.mt_fallback import CircuitState, FallbackTranslator
from livedub.runtime.errors import EngineError, ErrorCode

PAIRS = frozenset({("en", "es"), ("en", "de"), ("es", "en")})


class _FixedPairs(Translator):
    """A test translator that offers a fixed set of language pairs."""

    def __init__(self, pairs: frozenset[tuple[str, str]] = PAIRS) -> None:
        self._pairs = pairs

    @property
    def pairs(self) -> frozenset[tuple[str, str]]:
        return self._pairs

    def supports(self, source: str, target: str) -> bool:
        return (source, target) in self._pairs


class ScriptedTranslator(_FixedPairs):
    """A primary whose next calls fail as scripted (``None`` = succeed)."""

    name = "primary"

    def __init__(self, pairs: frozenset[tuple[str, str]] = PAIRS) -> None:
        super().__init__(pairs)
        self.script: deque[EngineError | None] = deque()
        self.calls = 0
        self.gate: threading.Event | None = None  # when set, calls wait for it (to hold a probe open)

    def translate(
        self,
        text: str,
        *,
        source: str,
        target: str,
        context: str | None = None,
        options: TranslationOptions | None = None,
    ) -> str:
        self.calls += 1
        if self.gate is not None:
            self.gate.wait(5)
        error = self.script.popleft() if self.script else None
        if error is not None:
            raise error
        return f"primary:{text}"


class EmbeddedTranslator(_FixedPairs):
    name = "embedded"

    def __init__(self, pairs: frozenset[tuple[str, str]] = PAIRS, fail: bool = False) -> None:
        super().__init__(pairs)
        self.fail = fail
        self.calls = 0

    def translate(
        self,
        text: str,
        *,
        source: str,
        target: str,
        context: str | None = None,
        options: TranslationOptions | None = None,
    ) -> str:
        self.calls += 1
        if self.fail:
            raise EngineError(ErrorCode.INTERNAL, "embedded engine broke")
        return f"fallback:{text}"


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def err(code: ErrorCode) -> EngineError:
    return EngineError(code, f"primary says {code}")


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def primary() -> ScriptedTranslator:
    return ScriptedTranslator()


@pytest.fixture
def embedded() -> EmbeddedTranslator:
    return EmbeddedTranslator()


@pytest.fixture
def mt(primary: ScriptedTranslator, embedded: EmbeddedTranslator, clock: Clock) -> FallbackTranslator:
    return FallbackTranslator(primary, embedded, failure_threshold=3, recovery_s=30, quota_recovery_s=600, clock=clock)


def tr(mt: Translator, text: str = "hi", source: str = "en", target: str = "es") -> str:
    return mt.translate(text, source=source, target=target, context="before")


# --- which failures fall back ----------------------------------------------------------------


def test_primary_success(mt: FallbackTranslator, embedded: EmbeddedTranslator) -> None:
    assert tr(mt) == "primary:hi"
    assert mt.fallback_total == 0 and embedded.calls == 0
    assert mt.name == "primary+embedded" and mt.active_engine == "primary"


@pytest.mark.parametrize("code", [ErrorCode.TIMEOUT, ErrorCode.SERVICE_UNAVAILABLE, ErrorCode.RATE_LIMIT_EXCEEDED])
def test_retryable_failure_falls_back(
    primary: ScriptedTranslator, embedded: EmbeddedTranslator, clock: Clock, code: ErrorCode
) -> None:
    seen: list[str] = []
    mt = FallbackTranslator(primary, embedded, on_fallback=seen.append, clock=clock)
    primary.script.append(err(code))
    assert tr(mt) == "fallback:hi"
    assert mt.fallback_total == 1 and mt.fallback_by_reason == {code.value.lower(): 1}
    assert seen == [code.value.lower()]
    assert mt.primary_failures_total == 1 and mt.state is CircuitState.CLOSED


def test_auth_failure_is_raised_not_hidden(mt: FallbackTranslator, primary: ScriptedTranslator) -> None:
    primary.script.extend([err(ErrorCode.AUTH_FAILED)] * 5)
    for _ in range(5):
        with pytest.raises(EngineError) as info:
            tr(mt)
        assert info.value.code is ErrorCode.AUTH_FAILED and not info.value.retryable
    assert mt.fallback_total == 0 and mt.state is CircuitState.CLOSED


def test_bad_input_is_raised_and_does_not_trip_the_breaker(mt: FallbackTranslator, primary: ScriptedTranslator) -> None:
    primary.script.extend([err(ErrorCode.INVALID_PAYLOAD)] * 4)
    for _ in range(4):
        with pytest.raises(EngineError, match="INVALID_PAYLOAD"):
            tr(mt)
    assert mt.state is CircuitState.CLOSED and mt.primary_failures_total == 0


def test_quota_falls_back_and_opens_the_circuit_for_long(
    mt: FallbackTranslator, primary: ScriptedTranslator, clock: Clock
) -> None:
    primary.script.append(err(ErrorCode.QUOTA_EXCEEDED))
    assert tr(mt) == "fallback:hi"
    assert mt.state is CircuitState.OPEN and mt.fallback_by_reason["quota_exceeded"] == 1
    clock.now += 31  # past recovery_s, not past quota_recovery_s
    assert tr(mt) == "fallback:hi" and primary.calls == 1
    clock.now += 600
    assert tr(mt) == "primary:hi" and mt.state is CircuitState.CLOSED


def test_quota_can_be_configured_to_fail(
    primary: ScriptedTranslator, embedded: EmbeddedTranslator, clock: Clock
) -> None:
    mt = FallbackTranslator(primary, embedded, fallback_on_quota=False, clock=clock)
    primary.script.append(err(ErrorCode.QUOTA_EXCEEDED))
    with pytest.raises(EngineError) as info:
        tr(mt)
    assert info.value.code is ErrorCode.QUOTA_EXCEEDED and not info.value.retryable


# --- circuit breaker -------------------------------------------------------------------------


def test_consecutive_failures_open_the_circuit_and_skip_the_primary(
    mt: FallbackTranslator, primary: ScriptedTranslator, embedded: EmbeddedTranslator
) -> None:
    primary.script.extend([err(ErrorCode.TIMEOUT)] * 3)
    for _ in range(3):
        assert tr(mt) == "fallback:hi"
    assert mt.state is CircuitState.OPEN and mt.circuit_opened_total == 1
    assert mt.active_engine == "embedded"
    for _ in range(10):
        assert tr(mt) == "fallback:hi"
    assert primary.calls == 3  # no timeout paid per fragment while open
    stats = mt.stats()
    assert stats.fallback_total == 13 and stats.fallback_by_reason == {"timeout": 3, "circuit_open": 10}


def test_success_resets_the_failure_count(mt: FallbackTranslator, primary: ScriptedTranslator) -> None:
    primary.script.extend([err(ErrorCode.TIMEOUT), err(ErrorCode.TIMEOUT), None] * 3)
    for _ in range(9):
        tr(mt)
    assert mt.state is CircuitState.CLOSED and mt.primary_failures_total == 6


def test_half_open_probe_success_closes(mt: FallbackTranslator, primary: ScriptedTranslator, clock: Clock) -> None:
    primary.script.extend([err(ErrorCode.SERVICE_UNAVAILABLE)] * 3)
    for _ in range(3):
        tr(mt)
    clock.now += 29
    assert tr(mt) == "fallback:hi" and primary.calls == 3
    clock.now += 1
    assert tr(mt) == "primary:hi"  # the probe
    assert mt.state is CircuitState.CLOSED and mt.active_engine == "primary"
    assert tr(mt) == "primary:hi" and primary.calls == 5


def test_half_open_probe_failure_reopens(mt: FallbackTranslator, primary: ScriptedTranslator, clock: Clock) -> None:
    primary.script.extend([err(ErrorCode.TIMEOUT)] * 4)
    for _ in range(3):
        tr(mt)
    clock.now += 30
    assert tr(mt) == "fallback:hi"  # probe failed, answered by the fallback
    assert mt.state is CircuitState.OPEN and primary.calls == 4
    clock.now += 29
    tr(mt)
    assert primary.calls == 4  # a new recovery period started at the failed probe
    clock.now += 1
    assert tr(mt) == "primary:hi" and mt.state is CircuitState.CLOSED


def test_probe_that_gets_a_non_outage_answer_closes(
    mt: FallbackTranslator, primary: ScriptedTranslator, clock: Clock
) -> None:
    primary.script.extend([err(ErrorCode.TIMEOUT)] * 3 + [err(ErrorCode.INVALID_PAYLOAD)])
    for _ in range(3):
        tr(mt)
    clock.now += 30
    with pytest.raises(EngineError, match="INVALID_PAYLOAD"):
        tr(mt)
    assert mt.state is CircuitState.CLOSED


def test_only_one_probe_at_a_time(mt: FallbackTranslator, primary: ScriptedTranslator, clock: Clock) -> None:
    primary.script.extend([err(ErrorCode.TIMEOUT)] * 3)
    for _ in range(3):
        tr(mt)
    clock.now += 30
    primary.gate = threading.Event()
    results: list[str] = []
    probe = threading.Thread(target=lambda: results.append(tr(mt, "probe")))
    probe.start()
    deadline = time.monotonic() + 5
    while primary.calls < 4 and time.monotonic() < deadline:
        time.sleep(0.005)
    assert mt.state is CircuitState.HALF_OPEN
    assert [tr(mt, f"other{i}") for i in range(3)] == [
        "fallback:other0",
        "fallback:other1",
        "fallback:other2",
    ]
    primary.gate.set()
    probe.join(5)
    assert results == ["primary:probe"] and mt.state is CircuitState.CLOSED
    assert primary.calls == 4


def test_bug_in_probe_does_not_wedge_half_open(
    mt: FallbackTranslator, primary: ScriptedTranslator, clock: Clock
) -> None:
    primary.script.extend([err(ErrorCode.TIMEOUT)] * 3)
    for _ in range(3):
        tr(mt)
    clock.now += 30
    primary.script.append(RuntimeError("bug"))  # type: ignore[arg-type]
    with pytest.raises(RuntimeError):
        tr(mt)
    assert mt.state is CircuitState.OPEN
    clock.now += 30
    assert tr(mt) == "primary:hi"


# --- pairs and fallback failures -------------------------------------------------------------


def test_pairs_only_the_fallback_has_go_to_it(clock: Clock) -> None:
    primary = ScriptedTranslator(frozenset({("en", "de")}))
    embedded = EmbeddedTranslator(frozenset({("en", "es")}))
    mt = FallbackTranslator(primary, embedded, clock=clock)
    assert mt.pairs == {("en", "de"), ("en", "es")}
    assert mt.supports("en", "es") and mt.supports("en", "de") and not mt.supports("en", "fr")
    assert tr(mt, target="es") == "fallback:hi" and mt.fallback_by_reason == {"unsupported_pair": 1}
    with pytest.raises(EngineError) as info:
        tr(mt, target="fr")
    assert info.value.code is ErrorCode.UNSUPPORTED_LANGUAGE
    # A retryable failure on a pair the fallback lacks surfaces the primary's error.
    primary.script.append(err(ErrorCode.TIMEOUT))
    with pytest.raises(EngineError) as info:
        tr(mt, target="de")
    assert info.value.code is ErrorCode.TIMEOUT and info.value.retryable


def test_open_circuit_without_fallback_pair_fails_fast(clock: Clock) -> None:
    primary = ScriptedTranslator(frozenset({("en", "de"), ("en", "es")}))
    embedded = EmbeddedTranslator(frozenset({("en", "es")}))
    mt = FallbackTranslator(primary, embedded, failure_threshold=1, clock=clock)
    primary.script.append(err(ErrorCode.SERVICE_UNAVAILABLE))
    tr(mt, target="es")
    with pytest.raises(EngineError) as info:
        tr(mt, target="de")
    assert info.value.code is ErrorCode.SERVICE_UNAVAILABLE and info.value.retryable
    assert primary.calls == 1


def test_fallback_failure_reports_the_primary_error(primary: ScriptedTranslator, clock: Clock) -> None:
    mt = FallbackTranslator(primary, EmbeddedTranslator(fail=True), failure_threshold=1, clock=clock)
    primary.script.append(err(ErrorCode.TIMEOUT))
    with pytest.raises(EngineError) as info:
        tr(mt)
    assert info.value.code is ErrorCode.TIMEOUT and info.value.retryable
    with pytest.raises(EngineError) as info:  # circuit open: only the fallback ran
        tr(mt)
    assert info.value.code is ErrorCode.INTERNAL
    assert mt.fallback_failures_total == 2


def test_on_fallback_hook_errors_do_not_fail_fragments(primary: ScriptedTranslator, clock: Clock) -> None:
    def hook(reason: str) -> None:
        raise ValueError("metrics down")

    mt = FallbackTranslator(primary, EmbeddedTranslator(), on_fallback=hook, clock=clock)
    primary.script.append(err(ErrorCode.TIMEOUT))
    assert tr(mt) == "fallback:hi"


# --- with the real DeepL engine and the local DeepL-compatible server -------------------------


@pytest.fixture
def fake(fake_deepl: FakeDeepL) -> FakeDeepL:
    return fake_deepl  # shared, reset per test (tests/conftest.py)


@pytest.fixture
def deepl_mt(fake: FakeDeepL) -> Iterator[DeepLTranslator]:
    translator = DeepLTranslator(
        DEFAULT_KEY, server_url=fake.url, timeout_s=0.2, max_retries=0, deadline_s=1.0, cache_size=0
    )
    yield translator
    translator.close()


def test_deepl_outage_trips_breaker_and_recovers(deepl_mt: DeepLTranslator, fake: FakeDeepL, clock: Clock) -> None:
    mt = FallbackTranslator(deepl_mt, EmbeddedTranslator(frozenset({("en", "es")})), recovery_s=10, clock=clock)
    assert tr(mt, "hello") == "hola [ES context]"
    fake.fail_next(503, count=1000)
    for _ in range(3):
        assert tr(mt, "hello") == "fallback:hello"
    assert mt.state is CircuitState.OPEN
    sent = len(fake.translate_requests())
    for _ in range(20):
        assert tr(mt, "hello") == "fallback:hello"
    assert len(fake.translate_requests()) == sent  # DeepL left alone while open
    clock.now += 10
    assert tr(mt, "hello") == "fallback:hello"  # probe hits the still-failing DeepL
    assert len(fake.translate_requests()) == sent + 1 and mt.state is CircuitState.OPEN
    fake.reset()  # DeepL is back
    clock.now += 10
    assert tr(mt, "hello") == "hola [ES context]"
    assert mt.state is CircuitState.CLOSED
    assert mt.stats().fallback_by_reason == {"service_unavailable": 4, "circuit_open": 20}


def test_slow_deepl_costs_at_most_threshold_timeouts(deepl_mt: DeepLTranslator, fake: FakeDeepL, clock: Clock) -> None:
    mt = FallbackTranslator(deepl_mt, EmbeddedTranslator(frozenset({("en", "es")})), clock=clock)
    fake.delay_s = 2.0
    started = time.monotonic()
    outs = [tr(mt, f"w{i}") for i in range(10)]
    elapsed = time.monotonic() - started
    assert outs == [f"fallback:w{i}" for i in range(10)]
    assert mt.fallback_by_reason == {"timeout": 3, "circuit_open": 7}
    assert elapsed < 1.5  # 3 x 0.2 s timeouts, then no DeepL at all


def test_deepl_quota_falls_back(deepl_mt: DeepLTranslator, fake: FakeDeepL, clock: Clock) -> None:
    mt = FallbackTranslator(deepl_mt, EmbeddedTranslator(frozenset({("en", "es")})), clock=clock)
    fake.fail_next(456)
    assert tr(mt, "hello") == "fallback:hello"
    assert mt.state is CircuitState.OPEN and mt.fallback_by_reason == {"quota_exceeded": 1}


def test_deepl_auth_failure_is_not_masked(fake: FakeDeepL, clock: Clock) -> None:
    bad = DeepLTranslator("wrong", server_url=fake.url, timeout_s=0.2, max_retries=0, fetch_languages=False)
    try:
        mt = FallbackTranslator(bad, EmbeddedTranslator(frozenset({("en", "es")})), clock=clock)
        with pytest.raises(EngineError) as info:
            tr(mt, "hello")
        assert info.value.code is ErrorCode.AUTH_FAILED and mt.fallback_total == 0
    finally:
        bad.close()
