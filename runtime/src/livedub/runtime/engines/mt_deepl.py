"""DeepL translation through the official ``deepl`` client, shaped for live dubbing.

The ``deepl`` client is synchronous (``requests``) and this class is too: the pipeline calls
:meth:`DeepLTranslator.translate` from a worker thread (base.py), never on the event loop.

Why the client's own retry loop is switched off: ``deepl.http_client`` retries 429/5xx/connection
errors up to ``max_network_retries`` (default 5) with a 1 s * 1.6^n back-off and a per-attempt timeout
of ``max(time to back-off deadline (~1 s), min_connection_timeout (default 10 s))``. Those are module
globals (process-wide) and, even when lowered, the first attempt never times out in under ~1 s and the
whole loop has no overall deadline — one fragment could spend a minute in there while the stage
timeout (TRANSLATION_TIMEOUT_MS, 5 s by default) has long given up on it. So this module sets
``deepl.http_client.max_network_retries = 0`` (process-global: there is one DeepL user per process),
retries itself with a short exponential back-off inside an overall ``deadline_s``, and bounds every
attempt by mounting a ``requests`` adapter on the client's session that applies this instance's
per-attempt timeout. The adapter reaches into ``deepl.Translator._client._session`` (private in
deepl 1.32): if a later release moves it, a warning is logged and the timeout degrades to
``deepl.http_client.min_connection_timeout`` (also set here), and the timeout test fails loudly.

One ``deepl.Translator`` (one ``requests.Session``, one keep-alive connection pool sized for the
worker threads) per instance; the runtime builds one instance per process, so TLS handshakes to
DeepL happen once, not per fragment.

Languages: ``/v2/languages`` is read once at construction (it may block; start-up runs off the
loop). A rejected key fails construction with :class:`ModelLoadError` — a misconfigured key must stop
the process from reporting ready, not surface as one error per fragment. Any other failure falls
back to a built-in list and logs a warning.
"""

from __future__ import annotations

import logging
import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol, TypeVar

import requests
import requests.adapters

try:
    import deepl
except ImportError as exc:  # pragma: no cover - depends on the install
    raise ImportError("the DeepL engine needs the 'deepl' package: pip install 'livedub-runtime[deepl]'") from exc

from livedub.runtime.engines.base import TranslationOptions, Translator, base_language
from livedub.runtime.engines.mt_cache import CacheStats, TranslationCache
from livedub.runtime.engines.mt_glossary import Glossary
from livedub.runtime.errors import EngineError, ErrorCode, ModelLoadError

log = logging.getLogger(__name__)

T = TypeVar("T")

FORMALITIES = frozenset({"default", "more", "less", "prefer_more", "prefer_less"})

# Built-in language list (DeepL's published supported languages, late 2025), used only when
# /v2/languages cannot be read at start-up. Sources are bare codes; targets carry regional variants.
_STATIC_SOURCES = frozenset(
    {
        "AR", "BG", "CS", "DA", "DE", "EL", "EN", "ES", "ET", "FI", "FR", "HE", "HU", "ID", "IT", "JA", "KO",
        "LT", "LV", "NB", "NL", "PL", "PT", "RO", "RU", "SK", "SL", "SV", "TH", "TR", "UK", "VI", "ZH",
    }
)  # fmt: skip
_STATIC_TARGETS = frozenset(
    {
        "AR", "BG", "CS", "DA", "DE", "EL", "EN-GB", "EN-US", "ES", "ES-419", "ET", "FI", "FR", "HE", "HU",
        "ID", "IT", "JA", "KO", "LT", "LV", "NB", "NL", "PL", "PT-BR", "PT-PT", "RO", "RU", "SK", "SL", "SV",
        "TH", "TR", "UK", "VI", "ZH", "ZH-HANS", "ZH-HANT",
    }
)  # fmt: skip
_STATIC_FORMALITY_TARGETS = frozenset({"DE", "ES", "ES-419", "FR", "IT", "JA", "NL", "PL", "PT-BR", "PT-PT", "RU"})


class _Secret(Protocol):
    def get_secret_value(self) -> str: ...


@dataclass(frozen=True, slots=True)
class DeepLUsage:
    character_count: int | None
    character_limit: int | None

    @property
    def limit_reached(self) -> bool:
        return (
            self.character_count is not None
            and self.character_limit is not None
            and self.character_count >= self.character_limit
        )


@dataclass(frozen=True, slots=True)
class DeepLStats:
    """Counters the runtime can export as metrics."""

    requests_total: int
    retries_total: int
    characters_billed_total: int
    cache: CacheStats


class _TimeoutAdapter(requests.adapters.HTTPAdapter):
    """Applies the calling thread's per-attempt timeout to every request sent through the session.

    Thread-local because several worker threads share one session, each with its own remaining
    deadline.
    """

    def __init__(self, pool_size: int) -> None:
        super().__init__(pool_connections=1, pool_maxsize=pool_size, max_retries=0)
        self._local = threading.local()

    def set_timeout(self, seconds: float | None) -> None:
        self._local.timeout = seconds

    def send(self, request: Any, *args: Any, **kwargs: Any) -> requests.Response:
        timeout = getattr(self._local, "timeout", None)
        if timeout is not None:
            kwargs["timeout"] = timeout
        return super().send(request, *args, **kwargs)


def map_deepl_error(exc: BaseException) -> EngineError:
    """The one place a ``deepl``/``requests`` failure becomes a wire-visible :class:`EngineError`."""
    if isinstance(exc, EngineError):
        return exc
    detail = str(exc)
    if isinstance(exc, deepl.AuthorizationException):
        return EngineError(
            ErrorCode.AUTH_FAILED,
            "DeepL rejected the auth key (HTTP 403): check DEEPL_AUTH_KEY, and that free keys "
            f"(ending ':fx') are not sent to the pro endpoint via DEEPL_SERVER_URL ({detail})",
            retryable=False,
        )
    if isinstance(exc, deepl.QuotaExceededException):
        return EngineError(
            ErrorCode.QUOTA_EXCEEDED,
            "DeepL character quota for this billing period is used up (HTTP 456): raise the plan's "
            "limit or Cost Control in the DeepL account; DeepL translation resumes when the period resets",
            retryable=False,
        )
    if isinstance(exc, deepl.TooManyRequestsException):
        return EngineError(ErrorCode.RATE_LIMIT_EXCEEDED, f"DeepL rate limit (HTTP 429): {detail}", retryable=True)
    if isinstance(exc, deepl.ConnectionException):
        if isinstance(exc.__cause__, requests.Timeout):
            return EngineError(ErrorCode.TIMEOUT, f"DeepL did not answer in time: {detail}", retryable=True)
        return EngineError(ErrorCode.SERVICE_UNAVAILABLE, f"DeepL unreachable: {detail}", retryable=exc.should_retry)
    if isinstance(exc, deepl.DeepLException):
        status = exc.http_status_code
        if status is None:
            return EngineError(ErrorCode.INTERNAL, f"DeepL client error: {detail}", retryable=False)
        if status >= 500:
            return EngineError(ErrorCode.SERVICE_UNAVAILABLE, f"DeepL server error: {detail}", retryable=True)
        if status == 408:
            return EngineError(ErrorCode.TIMEOUT, f"DeepL request timeout: {detail}", retryable=True)
        if status in (400, 404, 413, 414, 422):
            return EngineError(ErrorCode.INVALID_PAYLOAD, f"DeepL refused the request: {detail}", retryable=False)
        return EngineError(ErrorCode.INTERNAL, f"unexpected DeepL answer: {detail}", retryable=False)
    if isinstance(exc, (ValueError, TypeError)):  # the client's own argument checks
        return EngineError(ErrorCode.INVALID_PAYLOAD, f"invalid DeepL request: {detail}", retryable=False)
    return EngineError(ErrorCode.INTERNAL, f"DeepL call failed: {exc!r}", retryable=False)


class DeepLTranslator(Translator):
    """:class:`Translator` backed by the DeepL API.

    :param auth_key: DEEPL_AUTH_KEY (``str`` or pydantic ``SecretStr``). Keys ending ``:fx`` use the
        free endpoint unless ``server_url`` is given.
    :param server_url: DEEPL_SERVER_URL, passed to the client as ``server_url``.
    :param timeout_s: bound on one HTTP attempt (connect, and each wait for bytes).
    :param max_retries: further attempts after a *retryable* failure (429, 5xx, timeouts, resets).
    :param deadline_s: bound on the whole call, attempts and back-off included; no retry starts that
        could not finish inside it. Set it at or under the translation stage timeout.
    :param backoff_s: first back-off; doubles per retry up to ``backoff_max_s``, ±25 % jitter.
    :param english_variant / portuguese_variant: DeepL target for bare ``en`` / ``pt``.
    :param cache_size: LRU entries (0 disables). ``cache_context``: include ``context`` in the key.
    :param max_connections: keep-alive pool size; match the worker threads that call translate.
    :param fetch_languages: read /v2/languages at construction (else use the built-in list).
    """

    name = "deepl"

    def __init__(
        self,
        auth_key: str | _Secret,
        *,
        server_url: str | None = None,
        timeout_s: float = 2.0,
        max_retries: int = 2,
        deadline_s: float | None = 5.0,
        backoff_s: float = 0.1,
        backoff_max_s: float = 1.0,
        english_variant: str = "EN-US",
        portuguese_variant: str = "PT-BR",
        cache_size: int = 1024,
        cache_context: bool = True,
        max_connections: int = 8,
        fetch_languages: bool = True,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        key = auth_key if isinstance(auth_key, str) else auth_key.get_secret_value()
        if not key.strip():
            raise ModelLoadError("DEEPL_AUTH_KEY is empty")
        if timeout_s <= 0 or max_retries < 0 or (deadline_s is not None and deadline_s <= 0):
            raise ValueError("timeout_s and deadline_s must be > 0, max_retries >= 0")
        self.timeout_s = timeout_s
        self.max_retries = max_retries
        self.deadline_s = deadline_s
        self.backoff_s = backoff_s
        self.backoff_max_s = backoff_max_s
        self.english_variant = english_variant.upper()
        self.portuguese_variant = portuguese_variant.upper()
        self.cache = TranslationCache(cache_size)
        self.cache_context = cache_context
        self._sleep = sleep
        self._counter_lock = threading.Lock()
        self.requests_total = 0
        self.retries_total = 0
        self.characters_billed_total = 0

        # Process-global client settings (see the module docstring): we retry, not the client.
        deepl.http_client.max_network_retries = 0
        deepl.http_client.min_connection_timeout = timeout_s
        self._client = deepl.Translator(key, server_url=server_url or None, send_platform_info=False)
        self._client.set_app_info("livedub", _version())
        self._adapter = _TimeoutAdapter(max_connections)
        session = getattr(getattr(self._client, "_client", None), "_session", None)
        if isinstance(session, requests.Session):
            session.mount("https://", self._adapter)
            session.mount("http://", self._adapter)
            self._timeout_enforced = True
        else:  # pragma: no cover - only on an incompatible deepl release
            self._timeout_enforced = False
            log.warning(
                "deepl %s: cannot bound per-request timeouts (client internals changed); "
                "attempts may take up to max(~1 s, %.1f s)",
                deepl.__version__,
                timeout_s,
            )

        self._sources: frozenset[str] = frozenset(c.lower() for c in _STATIC_SOURCES)
        self._targets: frozenset[str] = _STATIC_TARGETS
        self._formality_targets: frozenset[str] = _STATIC_FORMALITY_TARGETS
        self.languages_from_server = False
        if fetch_languages:
            self._load_languages()
        targets = {base_language(x) for x in self._targets}
        self._pairs = frozenset((s, t) for s in self._sources for t in targets if s != t)
        log.info(
            "DeepL translator ready: endpoint %s, %d pairs (%s), timeout %.2fs x %d attempts, deadline %s",
            self._client.server_url,
            len(self._pairs),
            "from /v2/languages" if self.languages_from_server else "built-in list",
            timeout_s,
            max_retries + 1,
            f"{deadline_s:.2f}s" if deadline_s is not None else "none",
        )

    # --- Translator interface ----------------------------------------------------------------
    @property
    def pairs(self) -> frozenset[tuple[str, str]]:
        return self._pairs

    def supports(self, source: str, target: str) -> bool:
        return (base_language(source), base_language(target)) in self._pairs

    def translate(
        self,
        text: str,
        *,
        source: str,
        target: str,
        context: str | None = None,
        options: TranslationOptions | None = None,
    ) -> str:
        if not text.strip():
            return text  # nothing to translate; DeepL would bill nothing and the client refuses ""
        if not self.supports(source, target):
            raise EngineError(ErrorCode.UNSUPPORTED_LANGUAGE, f"DeepL has no {source}->{target} pair", retryable=False)
        if options is not None and options.glossary and not options.glossary_id:
            # The stream's own terms (stream:init ``glossary``) without a DeepL glossary id: kept by
            # placeholders, as for Apertium (mt_glossary.py); a DeepL glossary id takes precedence.
            return Glossary(options.glossary).protect(
                self, text, source=source, target=target, context=context, options=options
            )
        source_code = self.source_code(source)
        target_code = self.target_code(target)
        formality = self._formality(options.formality if options else None, target_code)
        glossary = options.glossary_id if options and options.glossary_id else None
        context = _with_hints(context, options.domain_hints if options else ())
        key = (text, source_code, target_code, context if self.cache_context else None, formality, glossary)
        cached = self.cache.get(key)
        if cached is not None:
            return cached

        def call() -> Any:
            return self._client.translate_text(
                text,
                source_lang=source_code,
                target_lang=target_code,
                context=context,
                formality=formality,
                glossary=glossary,
            )

        result = self._call(call)
        with self._counter_lock:
            self.characters_billed_total += int(getattr(result, "billed_characters", 0) or 0)
        out: str = str(result.text)
        self.cache.put(key, out)
        return out

    # --- extras ------------------------------------------------------------------------------
    def usage(self) -> DeepLUsage:
        """Characters used / allowed this billing period (``/v2/usage``)."""
        usage = self._call(self._client.get_usage)
        return DeepLUsage(usage.character.count, usage.character.limit)

    def stats(self) -> DeepLStats:
        with self._counter_lock:
            return DeepLStats(self.requests_total, self.retries_total, self.characters_billed_total, self.cache.stats())

    def close(self) -> None:
        self._client.close()  # type: ignore[no-untyped-call]  # deepl's close() is unannotated

    @property
    def server_url(self) -> str:
        return str(self._client.server_url)

    def source_code(self, language: str) -> str:
        """DeepL source codes are bare upper-case ISO 639-1: ``en-GB`` → ``EN``."""
        return base_language(language).upper()

    def target_code(self, language: str) -> str:
        """DeepL target codes: ``en`` → EN-US/EN-GB, ``pt`` → PT-BR/PT-PT, ``pt-PT`` kept, else ``XX``."""
        code = language.replace("_", "-").upper()
        if "-" in code and code in self._targets:
            return code
        base = code.split("-")[0]
        if base == "EN":
            return self.english_variant
        if base == "PT":
            return self.portuguese_variant
        return base

    # --- internals ---------------------------------------------------------------------------
    def _formality(self, formality: str | None, target_code: str) -> str | None:
        if formality is None or formality == "default":
            return None
        value = formality.lower()
        if value not in FORMALITIES:
            raise EngineError(
                ErrorCode.INVALID_PAYLOAD,
                f"formality must be one of {sorted(FORMALITIES)}, got {formality!r}",
                retryable=False,
            )
        # DeepL answers 400 to "more"/"less" for targets without formality (e.g. EN-US); a stream-wide
        # preference must not fail fragments, so ask for the "prefer_" form, which DeepL ignores there.
        if value in ("more", "less") and target_code not in self._formality_targets:
            return f"prefer_{value}"
        return value

    def _call(self, fn: Callable[[], T]) -> T:
        """One API call with this instance's retry policy, attempt timeout and overall deadline."""
        start = time.monotonic()
        deadline = start + self.deadline_s if self.deadline_s is not None else None
        attempt = 0
        while True:
            timeout = self.timeout_s
            if deadline is not None:
                timeout = max(0.001, min(timeout, deadline - time.monotonic()))
            self._adapter.set_timeout(timeout)
            with self._counter_lock:
                self.requests_total += 1
            try:
                return fn()
            except Exception as exc:  # mapped below; the original is chained
                error = map_deepl_error(exc)
                cause: BaseException = exc
            finally:
                self._adapter.set_timeout(None)
            attempt += 1
            delay = min(self.backoff_max_s, self.backoff_s * 2 ** (attempt - 1)) * random.uniform(0.75, 1.25)
            out_of_time = deadline is not None and time.monotonic() + delay >= deadline
            if not error.retryable or attempt > self.max_retries or out_of_time:
                if error is cause:
                    raise error
                raise error from cause
            log.info("DeepL %s (attempt %d), retrying in %.2fs", error.code, attempt, delay)
            with self._counter_lock:
                self.retries_total += 1
            self._sleep(delay)

    def _load_languages(self) -> None:
        try:
            sources = self._call(self._client.get_source_languages)
            targets = self._call(self._client.get_target_languages)
        except EngineError as exc:
            if exc.code is ErrorCode.AUTH_FAILED:
                raise ModelLoadError(exc.message) from exc
            log.warning("could not read DeepL /v2/languages (%s); using the built-in language list", exc.message)
            return
        if not sources or not targets:
            log.warning("DeepL /v2/languages returned an empty list; using the built-in language list")
            return
        self._sources = frozenset(base_language(str(lang.code)) for lang in sources)
        self._targets = frozenset(str(lang.code).upper() for lang in targets)
        self._formality_targets = frozenset(
            str(lang.code).upper() for lang in targets if getattr(lang, "supports_formality", False)
        )
        self.languages_from_server = True


def _version() -> str:
    try:
        from importlib.metadata import version

        return version("livedub")
    except Exception:  # not installed as a distribution (e.g. a bare checkout)
        return "dev"


def _with_hints(context: str | None, hints: tuple[str, ...]) -> str | None:
    """DeepL's ``context`` informs the translation without being translated: the programme's terms
    (stream:init ``domain_hints``) go there, ahead of the previous sentence."""
    parts = [f"Terms: {', '.join(hints)}." if hints else "", context.strip() if context else ""]
    return " ".join(p for p in parts if p) or None
