"""DeepLTranslator through the real ``deepl`` client against the local DeepL-compatible server.

Timeouts are a fraction of a second and retries are off unless a test is about retries, so the whole
file runs in a few seconds.
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import deepl
import pytest
import requests
from pydantic import SecretStr

from fakes.deepl_server import DEFAULT_KEY, FakeDeepL
from livedub.runtime.engines.base import TranslationOptions
from livedub.runtime.engines.mt_deepl import DeepLTranslator, map_deepl_error
from livedub.runtime.errors import EngineError, ErrorCode, ModelLoadError

MakeTranslator = Callable[..., DeepLTranslator]


@pytest.fixture
def fake(fake_deepl: FakeDeepL) -> FakeDeepL:
    return fake_deepl  # shared, reset per test (tests/conftest.py)


@pytest.fixture
def make(fake: FakeDeepL) -> Iterator[MakeTranslator]:
    made: list[DeepLTranslator] = []

    def factory(**kwargs: Any) -> DeepLTranslator:
        args: dict[str, Any] = dict(
            server_url=fake.url,
            timeout_s=0.5,
            max_retries=0,
            deadline_s=3.0,
            backoff_s=0.01,
            backoff_max_s=0.05,
        )
        args.update(kwargs)
        key = args.pop("auth_key", DEFAULT_KEY)
        translator = DeepLTranslator(key, **args)
        made.append(translator)
        return translator

    yield factory
    for translator in made:
        translator.close()


def _error(fn: Callable[[], object]) -> EngineError:
    with pytest.raises(EngineError) as info:
        fn()
    return info.value


# --- success path ----------------------------------------------------------------------------


def test_translates_with_auth_header_and_json_body(make: MakeTranslator, fake: FakeDeepL) -> None:
    mt = make()
    assert mt.translate("Hello world", source="en", target="es") == "hola mundo [ES]"
    (req,) = fake.translate_requests()
    assert req.authorized and req.content_type == "application/json"
    assert req.params["text"] == ["Hello world"]
    assert req.params["source_lang"] == "EN" and req.params["target_lang"] == "ES"
    assert "context" not in req.params and "formality" not in req.params
    assert "livedub/" in req.user_agent
    assert mt.stats().characters_billed_total == len("Hello world")


def test_languages_read_once_from_server(make: MakeTranslator, fake: FakeDeepL) -> None:
    mt = make()
    assert mt.languages_from_server
    kinds = [r.params.get("type", "source") for r in fake.requests if r.path == "/v2/languages"]
    assert kinds == ["source", "target"]
    assert mt.supports("en", "es") and mt.supports("de", "pt") and mt.supports("en-GB", "pt-BR")
    assert ("en", "de") in mt.pairs and ("es", "en") in mt.pairs
    assert not mt.supports("en", "en")
    assert not mt.supports("en", "xx")
    assert not mt.supports("he", "en")  # not in this server's list, though in the built-in one
    mt.translate("hello", source="en", target="de")
    assert sum(r.path == "/v2/languages" for r in fake.requests) == 2


def test_unsupported_pair_is_refused_without_a_request(make: MakeTranslator, fake: FakeDeepL) -> None:
    mt = make()
    err = _error(lambda: mt.translate("hello", source="en", target="xx"))
    assert err.code is ErrorCode.UNSUPPORTED_LANGUAGE and not err.retryable
    assert fake.translate_requests() == []


def test_builtin_language_list_when_languages_endpoint_fails(make: MakeTranslator, fake: FakeDeepL) -> None:
    fake.fail_next(500, count=1, path="/v2/languages")
    mt = make()
    assert not mt.languages_from_server
    assert mt.supports("en", "es") and mt.supports("he", "en")


def test_empty_text_costs_nothing(make: MakeTranslator, fake: FakeDeepL) -> None:
    assert make().translate("  ", source="en", target="es") == "  "
    assert fake.translate_requests() == []


def test_context_is_sent_as_deepl_context(make: MakeTranslator, fake: FakeDeepL) -> None:
    mt = make()
    out = mt.translate("Thank you", source="en", target="fr", context="The minister spoke.")
    assert out == "merci tu [FR context]"
    assert fake.translate_requests()[-1].params["context"] == "The minister spoke."
    mt.translate("news", source="en", target="fr", context="   ")
    assert "context" not in fake.translate_requests()[-1].params


def test_formality_and_glossary_options(make: MakeTranslator, fake: FakeDeepL) -> None:
    fake.glossaries.add("gl-1")
    mt = make()
    out = mt.translate("good morning", source="en", target="de", options=TranslationOptions(formality="more"))
    assert out == "guten morgen [DE formality=more]"
    out = mt.translate(
        "news", source="en", target="es", options=TranslationOptions(formality="less", glossary_id="gl-1")
    )
    assert out == "noticias [ES formality=less glossary=gl-1]"
    params = fake.translate_requests()[-1].params
    assert params["glossary_id"] == "gl-1" and params["source_lang"] == "EN"
    # "default" is DeepL's default: not sent.
    mt.translate("hello", source="en", target="de", options=TranslationOptions(formality="default"))
    assert "formality" not in fake.translate_requests()[-1].params


def test_formality_on_target_without_formality_does_not_fail(make: MakeTranslator, fake: FakeDeepL) -> None:
    out = make().translate("hola", source="es", target="en", options=TranslationOptions(formality="more"))
    assert out == "hola [EN-US formality=prefer_more]"


def test_invalid_formality_and_unknown_glossary_are_invalid_payload(make: MakeTranslator, fake: FakeDeepL) -> None:
    mt = make()
    err = _error(lambda: mt.translate("hi", source="en", target="de", options=TranslationOptions(formality="rude")))
    assert err.code is ErrorCode.INVALID_PAYLOAD and not err.retryable
    assert fake.translate_requests() == []
    err = _error(lambda: mt.translate("hi", source="en", target="de", options=TranslationOptions(glossary_id="nope")))
    assert err.code is ErrorCode.INVALID_PAYLOAD and not err.retryable
    assert "glossary" in err.message


@pytest.mark.parametrize(
    ("target", "expected"),
    [
        ("en", "EN-US"),
        ("EN", "EN-US"),
        ("en-GB", "EN-GB"),
        ("en_gb", "EN-GB"),
        ("pt", "PT-BR"),
        ("pt-PT", "PT-PT"),
        ("de", "DE"),
        ("de-AT", "DE"),  # no such DeepL variant: the bare language
        ("zh", "ZH"),
    ],
)
def test_target_language_mapping(make: MakeTranslator, fake: FakeDeepL, target: str, expected: str) -> None:
    source = "de" if target.lower().startswith("en") else "en"
    out = make().translate("hello", source=source, target=target)
    assert out.endswith(f"[{expected}]")
    assert fake.translate_requests()[-1].params["target_lang"] == expected


def test_configured_variants_and_bare_sources(make: MakeTranslator, fake: FakeDeepL) -> None:
    mt = make(english_variant="en-gb", portuguese_variant="PT-PT")
    assert mt.target_code("en") == "EN-GB" and mt.target_code("pt") == "PT-PT"
    mt.translate("hello", source="en-US", target="pt")
    params = fake.translate_requests()[-1].params
    assert params["source_lang"] == "EN" and params["target_lang"] == "PT-PT"


# --- endpoints, keys, connection reuse -------------------------------------------------------


def test_free_and_pro_endpoints_and_secret_keys() -> None:
    free = DeepLTranslator(SecretStr("abc:fx"), fetch_languages=False)
    pro = DeepLTranslator("abc", fetch_languages=False)
    custom = DeepLTranslator("abc:fx", server_url="http://127.0.0.1:9", fetch_languages=False)
    try:
        assert free.server_url == "https://api-free.deepl.com"
        assert pro.server_url == "https://api.deepl.com"
        assert custom.server_url == "http://127.0.0.1:9"
        assert not free.languages_from_server and free.supports("en", "es")
    finally:
        for t in (free, pro, custom):
            t.close()


def test_empty_key_fails_fast() -> None:
    with pytest.raises(ModelLoadError):
        DeepLTranslator(SecretStr(" "))


def test_client_retry_loop_is_disabled_process_wide(make: MakeTranslator) -> None:
    make(timeout_s=0.7)
    assert deepl.http_client.max_network_retries == 0
    assert deepl.http_client.min_connection_timeout == 0.7


def test_one_keep_alive_connection_is_reused(make: MakeTranslator, fake: FakeDeepL) -> None:
    mt = make()
    for word in ("hello", "world", "news", "good", "morning"):
        mt.translate(word, source="en", target="es")
    assert len({r.peer for r in fake.requests}) == 1


def test_concurrent_worker_threads_share_one_instance(make: MakeTranslator, fake: FakeDeepL) -> None:
    mt = make(max_connections=4, cache_size=0)
    with ThreadPoolExecutor(4) as pool:
        outs = list(pool.map(lambda i: mt.translate(f"hello {i}", source="en", target="es"), range(16)))
    assert outs == [f"hola {i} [ES]" for i in range(16)]
    assert len({r.peer for r in fake.translate_requests()}) <= 4


def test_usage(make: MakeTranslator, fake: FakeDeepL) -> None:
    fake.character_limit = 100
    mt = make()
    mt.translate("hello world", source="en", target="es")
    usage = mt.usage()
    assert (usage.character_count, usage.character_limit) == (11, 100)
    assert not usage.limit_reached


# --- error mapping ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "code", "retryable"),
    [
        (400, ErrorCode.INVALID_PAYLOAD, False),
        (403, ErrorCode.AUTH_FAILED, False),
        (429, ErrorCode.RATE_LIMIT_EXCEEDED, True),
        (456, ErrorCode.QUOTA_EXCEEDED, False),
        (500, ErrorCode.SERVICE_UNAVAILABLE, True),
        (502, ErrorCode.SERVICE_UNAVAILABLE, True),
        (503, ErrorCode.SERVICE_UNAVAILABLE, True),
        (504, ErrorCode.SERVICE_UNAVAILABLE, True),
    ],
)
def test_http_status_mapping(
    make: MakeTranslator, fake: FakeDeepL, status: int, code: ErrorCode, retryable: bool
) -> None:
    mt = make()
    fake.fail_next(status)
    err = _error(lambda: mt.translate("hello", source="en", target="es"))
    assert (err.code, err.retryable) == (code, retryable)
    assert isinstance(err.__cause__, deepl.DeepLException)
    assert err.__cause__.http_status_code == status
    assert len(fake.translate_requests()) == 1
    # The next call is unaffected.
    assert mt.translate("hello", source="en", target="es") == "hola [ES]"


def test_quota_message_is_actionable(make: MakeTranslator, fake: FakeDeepL) -> None:
    fake.character_limit = 8
    mt = make()
    mt.translate("hello", source="en", target="es")
    err = _error(lambda: mt.translate("world!", source="en", target="es"))  # real quota crossing
    assert err.code is ErrorCode.QUOTA_EXCEEDED and not err.retryable
    assert "quota" in err.message and "456" in err.message and "billing period" in err.message


def test_wrong_key_fails_construction_loudly(make: MakeTranslator) -> None:
    with pytest.raises(ModelLoadError, match="403"):
        make(auth_key="wrong-key")


def test_wrong_key_at_translate_is_auth_failed(make: MakeTranslator, fake: FakeDeepL) -> None:
    mt = make(auth_key="wrong-key", fetch_languages=False, max_retries=3)
    err = _error(lambda: mt.translate("hello", source="en", target="es"))
    assert err.code is ErrorCode.AUTH_FAILED and not err.retryable
    assert "DEEPL_AUTH_KEY" in err.message
    assert len(fake.translate_requests()) == 1  # not retried


def test_connection_refused_is_service_unavailable(make: MakeTranslator) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    mt = make(server_url=f"http://127.0.0.1:{port}", fetch_languages=False)
    err = _error(lambda: mt.translate("hello", source="en", target="es"))
    assert err.code is ErrorCode.SERVICE_UNAVAILABLE and err.retryable


def test_slow_response_is_bounded_by_the_configured_timeout(make: MakeTranslator, fake: FakeDeepL) -> None:
    mt = make(timeout_s=0.3)
    fake.slow_next(3.0)
    started = time.monotonic()
    err = _error(lambda: mt.translate("hello", source="en", target="es"))
    elapsed = time.monotonic() - started
    assert err.code is ErrorCode.TIMEOUT and err.retryable
    assert isinstance(err.__cause__, deepl.ConnectionException)
    # The client alone would wait max(~1 s, 10 s): the adapter applies our 0.3 s.
    assert 0.25 <= elapsed < 0.9


def test_deadline_bounds_retries_of_slow_responses(make: MakeTranslator, fake: FakeDeepL) -> None:
    mt = make(timeout_s=0.3, max_retries=10, deadline_s=0.8)
    fake.slow_next(3.0, count=20)
    started = time.monotonic()
    err = _error(lambda: mt.translate("hello", source="en", target="es"))
    elapsed = time.monotonic() - started
    assert err.code is ErrorCode.TIMEOUT
    assert elapsed < 1.3  # deadline 0.8 s (+ scheduling slack); without it: 11 x 0.3 s
    assert 2 <= len(fake.translate_requests()) <= 3


# --- retries ---------------------------------------------------------------------------------


def test_429_is_retried_then_succeeds(make: MakeTranslator, fake: FakeDeepL) -> None:
    mt = make(max_retries=2)
    fake.fail_next(429, count=2)
    assert mt.translate("hello", source="en", target="es") == "hola [ES]"
    assert len(fake.translate_requests()) == 3
    assert mt.stats().retries_total == 2


def test_5xx_retried_until_retries_run_out(make: MakeTranslator, fake: FakeDeepL) -> None:
    mt = make(max_retries=2)
    fake.fail_next(503, count=3)
    err = _error(lambda: mt.translate("hello", source="en", target="es"))
    assert err.code is ErrorCode.SERVICE_UNAVAILABLE and err.retryable
    assert len(fake.translate_requests()) == 3


def test_timeout_then_success_on_retry(make: MakeTranslator, fake: FakeDeepL) -> None:
    mt = make(timeout_s=0.2, max_retries=1)
    fake.slow_next(1.0)
    assert mt.translate("news", source="en", target="de") == "nachrichten [DE]"
    assert len(fake.translate_requests()) == 2


@pytest.mark.parametrize("status", [400, 403, 456])
def test_non_retryable_statuses_are_not_retried(make: MakeTranslator, fake: FakeDeepL, status: int) -> None:
    mt = make(max_retries=3)
    fake.fail_next(status)
    _error(lambda: mt.translate("hello", source="en", target="es"))
    assert len(fake.translate_requests()) == 1
    assert mt.stats().retries_total == 0


# --- cache -----------------------------------------------------------------------------------


def test_repeated_phrase_is_served_from_cache(make: MakeTranslator, fake: FakeDeepL) -> None:
    mt = make()
    first = mt.translate("Thank you", source="en", target="es", context="Good evening.")
    again = mt.translate("Thank you", source="en", target="es", context="Good evening.")
    assert first == again and len(fake.translate_requests()) == 1
    # Anything that changes DeepL's output is part of the key.
    mt.translate("Thank you", source="en", target="es", context="Another sentence.")
    mt.translate("Thank you", source="en", target="de", context="Good evening.")
    mt.translate("Thank you", source="en", target="es", context="Good evening.", options=TranslationOptions("more"))
    assert len(fake.translate_requests()) == 4
    stats = mt.stats().cache
    assert (stats.hits, stats.size) == (1, 4)


def test_cache_can_ignore_context(make: MakeTranslator, fake: FakeDeepL) -> None:
    mt = make(cache_context=False)
    mt.translate("Thank you", source="en", target="es", context="one")
    mt.translate("Thank you", source="en", target="es", context="two")
    assert len(fake.translate_requests()) == 1


def test_cache_disabled_and_failures_not_cached(make: MakeTranslator, fake: FakeDeepL) -> None:
    mt = make(cache_size=0)
    mt.translate("hello", source="en", target="es")
    mt.translate("hello", source="en", target="es")
    assert len(fake.translate_requests()) == 2
    cached = make()
    fake.fail_next(503)
    _error(lambda: cached.translate("world", source="en", target="es"))
    assert cached.translate("world", source="en", target="es") == "mundo [ES]"


def test_cache_is_lru(make: MakeTranslator, fake: FakeDeepL) -> None:
    mt = make(cache_size=2)
    for word in ("hello", "world", "hello", "news", "hello", "world"):
        mt.translate(word, source="en", target="es")
    # hello, world, news miss; hello hits twice; world was evicted by news.
    assert [r.params["text"][0] for r in fake.translate_requests()] == ["hello", "world", "news", "world"]


# --- mapping of client-side failures ---------------------------------------------------------


def test_map_error_of_client_side_failures() -> None:
    assert map_deepl_error(ValueError("text must not be empty")).code is ErrorCode.INVALID_PAYLOAD
    bare = map_deepl_error(deepl.DeepLException("weird"))
    assert bare.code is ErrorCode.INTERNAL and not bare.retryable
    conn = deepl.ConnectionException("reset", should_retry=True)
    assert map_deepl_error(conn).code is ErrorCode.SERVICE_UNAVAILABLE
    try:
        raise deepl.ConnectionException("timed out", should_retry=True) from requests.ReadTimeout("x")
    except deepl.ConnectionException as exc:
        assert map_deepl_error(exc).code is ErrorCode.TIMEOUT
    assert map_deepl_error(RuntimeError("boom")).code is ErrorCode.INTERNAL


# --- the fake itself speaks DeepL's wire format (form bodies, auth header) -------------------


def test_fake_accepts_form_bodies_and_checks_auth(fake: FakeDeepL) -> None:
    ok = requests.post(
        f"{fake.url}/v2/translate",
        data={"text": ["hello", "world"], "target_lang": "DE"},
        headers={"Authorization": f"DeepL-Auth-Key {DEFAULT_KEY}"},
        timeout=5,
    )
    assert ok.status_code == 200
    assert [t["text"] for t in ok.json()["translations"]] == ["hallo [DE]", "welt [DE]"]
    assert "billed_characters" not in ok.json()["translations"][0]
    for headers in ({}, {"Authorization": f"Bearer {DEFAULT_KEY}"}, {"Authorization": "DeepL-Auth-Key nope"}):
        denied = requests.post(
            f"{fake.url}/v2/translate", data={"text": "x", "target_lang": "DE"}, headers=headers, timeout=5
        )
        assert denied.status_code == 403 and "message" in denied.json()
    usage = requests.post(f"{fake.url}/v2/usage", headers={"Authorization": f"DeepL-Auth-Key {DEFAULT_KEY}"}, timeout=5)
    assert set(usage.json()) == {"character_count", "character_limit"}
    langs = requests.get(
        f"{fake.url}/v2/languages?type=target",
        headers={"Authorization": f"DeepL-Auth-Key {DEFAULT_KEY}"},
        timeout=5,
    )
    assert {"language", "name", "supports_formality"} <= set(langs.json()[0])


def test_fake_server_runs_in_background_thread(fake: FakeDeepL) -> None:
    assert any(t.name == "fake-deepl" and t.daemon for t in threading.enumerate())
