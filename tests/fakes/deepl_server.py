"""A local stand-in for the parts of the DeepL API v2 that the official ``deepl`` client uses.

DeepL publishes no mock server to any registry these machines reach (see /work/shared/NOTES.md), so
the DeepL backend is tested against this one, on loopback, through the *real* ``deepl`` client and
its real HTTP stack. It follows DeepL's published API reference
(https://developers.deepl.com/api-reference/translate, ``/usage``, ``/languages``, and the
"Error handling" page):

* ``Authorization: DeepL-Auth-Key <key>`` is required on every call; anything else is 403.
* ``POST /v2/translate`` takes a JSON body (what ``deepl`` ≥ 1.19 sends) or a form body (older
  clients, curl): ``text`` (one or a list), ``target_lang``, ``source_lang``, ``context``,
  ``formality``, ``glossary_id``, ``show_billed_characters``. The answer is
  ``{"translations": [{"detected_source_language", "text", "billed_characters"?}]}``; the last only
  when ``show_billed_characters`` was asked for, as DeepL does (the client always asks for it).
* ``GET|POST /v2/usage`` answers ``{"character_count", "character_limit"}``.
* ``GET /v2/languages?type=source|target``: a list of ``{"language", "name"}`` (targets add
  ``supports_formality``). The ``deepl`` client sends ``type`` as a *form body on a GET*, so both
  the query string and the body are read.
* Errors are DeepL's statuses with a JSON ``{"message": ...}``: 400 bad parameter, 403 auth,
  404 unknown path, 429 too many requests, 456 quota exceeded, 5xx internal.

"Translation" is deterministic so tests can see what arrived: a word-for-word dictionary (unknown
words pass through) followed by a marker ``[<TARGET_LANG>]``, or ``[<TARGET_LANG> formality=...
context glossary=...]`` when those parameters were sent. Text characters are billed against
``character_limit``; crossing it answers 456 like the real service.

Faults are injected from the test thread: :meth:`FakeDeepL.fail_next` (the next N matching requests
answer a status), :meth:`FakeDeepL.slow_next` / :attr:`FakeDeepL.delay_s` (sleep before answering),
and every request is recorded (:attr:`FakeDeepL.requests`) with its params and the client's TCP
peer, so connection reuse is observable. The server runs its own event loop in a daemon thread
because the ``deepl`` client is synchronous and tests calling it are plain sync tests.
"""

from __future__ import annotations

import asyncio
import json
import socket
import threading
import urllib.parse
from collections import deque
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

DEFAULT_KEY = "fake-deepl-key:fx"

# Codes as the live /v2/languages returns them (upper case; targets carry regional variants).
SOURCE_LANGUAGES: dict[str, str] = {
    "DE": "German", "EN": "English", "ES": "Spanish", "FR": "French", "IT": "Italian",
    "JA": "Japanese", "NL": "Dutch", "PL": "Polish", "PT": "Portuguese", "RU": "Russian",
    "ZH": "Chinese",
}  # fmt: skip
#: target code -> (name, supports_formality)
TARGET_LANGUAGES: dict[str, tuple[str, bool]] = {
    "DE": ("German", True), "EN-GB": ("English (British)", False),
    "EN-US": ("English (American)", False), "ES": ("Spanish", True), "FR": ("French", True),
    "IT": ("Italian", True), "JA": ("Japanese", True), "NL": ("Dutch", True),
    "PL": ("Polish", True), "PT-BR": ("Portuguese (Brazilian)", True),
    "PT-PT": ("Portuguese (European)", True), "RU": ("Russian", True),
    "ZH": ("Chinese (simplified)", False),
}  # fmt: skip
# DeepL still accepts the bare EN / PT targets (deprecated "unspecified variant").
_LEGACY_TARGETS = {"EN": "EN-GB", "PT": "PT-PT"}
_PARAMS = web.RequestKey("params", dict)
FORMALITIES = frozenset({"default", "more", "less", "prefer_more", "prefer_less"})

# A few words per language: enough for tests to tell a translation happened and to which language.
DICTIONARY: dict[str, dict[str, str]] = {
    "ES": {"hello": "hola", "world": "mundo", "good": "buenos", "morning": "días", "thank": "gracias",
           "you": "tú", "news": "noticias"},
    "DE": {"hello": "hallo", "world": "welt", "good": "guten", "morning": "morgen", "thank": "danke",
           "you": "du", "news": "nachrichten"},
    "FR": {"hello": "bonjour", "world": "monde", "good": "bon", "morning": "matin", "thank": "merci",
           "you": "tu", "news": "nouvelles"},
}  # fmt: skip


@dataclass(frozen=True, slots=True)
class RecordedRequest:
    method: str
    path: str
    params: dict[str, Any]
    content_type: str
    authorized: bool
    peer: tuple[str, int] | None
    user_agent: str


@dataclass(slots=True)
class _Fault:
    status: int
    remaining: int
    path: str | None
    message: str
    retry_after: int | None = None


@dataclass(slots=True)
class _Delay:
    seconds: float
    remaining: int
    path: str | None


@dataclass
class FakeDeepL:
    """A DeepL API v2 look-alike. Use as a context manager, or call :meth:`start` / :meth:`stop`."""

    auth_keys: set[str] = field(default_factory=lambda: {DEFAULT_KEY})
    character_limit: int = 500_000
    character_count: int = 0
    #: Seconds every request waits before answering (in addition to :meth:`slow_next`).
    delay_s: float = 0.0
    requests: list[RecordedRequest] = field(default_factory=list)
    glossaries: set[str] = field(default_factory=set)

    def __post_init__(self) -> None:
        self._lock = threading.Lock()
        self._faults: deque[_Fault] = deque()
        self._delays: deque[_Delay] = deque()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._runner: web.AppRunner | None = None
        self.url = ""

    # --- control from tests ------------------------------------------------------------------
    def fail_next(
        self,
        status: int,
        count: int = 1,
        *,
        path: str | None = "/v2/translate",
        message: str | None = None,
        retry_after: int | None = None,
    ) -> None:
        """Answer the next ``count`` requests to ``path`` (None: any path) with ``status``."""
        default = {
            400: "Bad request", 403: "Forbidden", 429: "Too many requests",
            456: "Quota exceeded. The character limit has been reached.",
            500: "Internal server error", 502: "Bad gateway", 503: "Service unavailable",
            504: "Gateway timeout",
        }.get(status, "Error")  # fmt: skip
        with self._lock:
            self._faults.append(_Fault(status, count, path, message or default, retry_after))

    def slow_next(self, seconds: float, count: int = 1, *, path: str | None = "/v2/translate") -> None:
        """Delay the next ``count`` requests to ``path`` by ``seconds`` before answering."""
        with self._lock:
            self._delays.append(_Delay(seconds, count, path))

    def reset(self) -> None:
        with self._lock:
            self._faults.clear()
            self._delays.clear()
            self.requests.clear()
            self.delay_s = 0.0
            self.character_count = 0
            self.character_limit = 500_000
            self.auth_keys = {DEFAULT_KEY}
            self.glossaries = set()

    def translate_requests(self) -> list[RecordedRequest]:
        with self._lock:
            return [r for r in self.requests if r.path == "/v2/translate"]

    # --- lifecycle ---------------------------------------------------------------------------
    def start(self) -> str:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.bind(("127.0.0.1", 0))
        host, port = sock.getsockname()
        self.url = f"http://{host}:{port}"
        started = threading.Event()
        errors: list[BaseException] = []

        def run() -> None:
            loop = asyncio.new_event_loop()
            self._loop = loop
            asyncio.set_event_loop(loop)
            try:
                # handler_cancellation: a client that timed out disconnects; its slow handler stops.
                self._runner = web.AppRunner(
                    self._app(), handler_cancellation=True, access_log=None, shutdown_timeout=0.5
                )
                loop.run_until_complete(self._runner.setup())
                loop.run_until_complete(web.SockSite(self._runner, sock).start())
            except BaseException as exc:  # surfaced to start()'s caller below
                errors.append(exc)
                started.set()
                return
            started.set()
            loop.run_forever()
            loop.run_until_complete(self._runner.cleanup())
            loop.close()

        self._thread = threading.Thread(target=run, name="fake-deepl", daemon=True)
        self._thread.start()
        started.wait(10)
        if errors:
            raise errors[0]
        return self.url

    def stop(self) -> None:
        if self._loop is not None and self._thread is not None:
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(10)
        self._loop = self._thread = None

    def __enter__(self) -> FakeDeepL:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # --- the HTTP side -----------------------------------------------------------------------
    def _app(self) -> web.Application:
        app = web.Application(middlewares=[self._middleware])
        app.router.add_post("/v2/translate", self._translate)
        app.router.add_route("GET", "/v2/usage", self._usage)
        app.router.add_route("POST", "/v2/usage", self._usage)
        app.router.add_route("GET", "/v2/languages", self._languages)
        app.router.add_route("POST", "/v2/languages", self._languages)
        return app

    @staticmethod
    async def _params(request: web.Request) -> dict[str, Any]:
        params: dict[str, Any] = dict(request.query)
        body = await request.read()
        if not body:
            return params
        if request.content_type == "application/json":
            try:
                parsed = json.loads(body)
            except ValueError:
                raise _error(400, "Invalid JSON body") from None
            if not isinstance(parsed, dict):
                raise _error(400, "JSON body must be an object")
            params.update(parsed)
        else:  # application/x-www-form-urlencoded; ``text`` may repeat
            for key, values in urllib.parse.parse_qs(body.decode(), keep_blank_values=True).items():
                params[key] = values if key == "text" else values[-1]
        return params

    def _take(self, queue: deque[Any], path: str) -> Any:
        with self._lock:
            for item in queue:
                if item.path in (None, path) and item.remaining > 0:
                    item.remaining -= 1
                    if item.remaining == 0:
                        queue.remove(item)
                    return item
        return None

    @web.middleware
    async def _middleware(self, request: web.Request, handler: Any) -> web.StreamResponse:
        try:
            params = await self._params(request)
        except _ApiError as exc:
            return exc.response
        header = request.headers.get("Authorization", "")
        scheme, _, key = header.partition(" ")
        authorized = scheme == "DeepL-Auth-Key" and key in self.auth_keys
        peer = request.transport.get_extra_info("peername") if request.transport else None
        with self._lock:
            self.requests.append(
                RecordedRequest(
                    request.method, request.path, params, request.content_type, authorized,
                    tuple(peer[:2]) if peer else None, request.headers.get("User-Agent", ""),
                )
            )  # fmt: skip
        delay = self.delay_s
        slow = self._take(self._delays, request.path)
        if slow is not None:
            delay += slow.seconds
        if delay:
            await asyncio.sleep(delay)
        if not authorized:
            return _error(403, "Forbidden").response
        fault = self._take(self._faults, request.path)
        if fault is not None:
            headers = {"Retry-After": str(fault.retry_after)} if fault.retry_after is not None else None
            return _error(fault.status, fault.message, headers).response
        request[_PARAMS] = params
        try:
            response: web.StreamResponse = await handler(request)
        except _ApiError as exc:
            return exc.response
        return response

    async def _translate(self, request: web.Request) -> web.Response:
        p: dict[str, Any] = request[_PARAMS]
        texts = p.get("text")
        if texts is None or texts == []:
            raise _error(400, "Parameter 'text' not specified.")
        if isinstance(texts, str):
            texts = [texts]
        if len(texts) > 50:
            raise _error(400, "Too many texts: at most 50 per request.")
        target = str(p.get("target_lang", "")).upper()
        target = _LEGACY_TARGETS.get(target, target)
        if target not in TARGET_LANGUAGES:
            raise _error(400, "Value for 'target_lang' not supported.")
        source = p.get("source_lang")
        if source is not None and str(source).upper() not in SOURCE_LANGUAGES:
            raise _error(400, "Value for 'source_lang' not supported.")
        formality = p.get("formality")
        if formality is not None:
            if formality not in FORMALITIES:
                raise _error(400, "Value for 'formality' not supported.")
            if formality in ("more", "less") and not TARGET_LANGUAGES[target][1]:
                raise _error(400, "'formality' is not supported for given 'target_lang'.")
        glossary = p.get("glossary_id")
        if glossary is not None:
            if source is None:
                raise _error(400, "Use of a glossary requires the 'source_lang' parameter to be specified.")
            if glossary not in self.glossaries:
                raise _error(400, "Invalid glossary id.")
        billed = sum(len(t) for t in texts)
        with self._lock:
            if self.character_count + billed > self.character_limit:
                quota_hit = True
            else:
                quota_hit = False
                self.character_count += billed
        if quota_hit:
            raise _error(456, "Quota exceeded. The character limit has been reached.")
        marker = target
        if formality is not None:
            marker += f" formality={formality}"
        if p.get("context"):
            marker += " context"
        if glossary is not None:
            marker += f" glossary={glossary}"
        show_billed = str(p.get("show_billed_characters", "")).lower() in ("true", "1")
        out = []
        for text in texts:
            item: dict[str, Any] = {
                "detected_source_language": str(source).upper() if source else "EN",
                "text": f"{_translate_words(text, target)} [{marker}]",
            }
            if show_billed:
                item["billed_characters"] = len(text)
            out.append(item)
        return web.json_response({"translations": out})

    async def _usage(self, request: web.Request) -> web.Response:
        with self._lock:
            body = {"character_count": self.character_count, "character_limit": self.character_limit}
        return web.json_response(body)

    async def _languages(self, request: web.Request) -> web.Response:
        kind = request[_PARAMS].get("type", "source")
        if kind == "source":
            return web.json_response([{"language": c, "name": n} for c, n in SOURCE_LANGUAGES.items()])
        if kind == "target":
            return web.json_response(
                [{"language": c, "name": n, "supports_formality": f} for c, (n, f) in TARGET_LANGUAGES.items()]
            )
        raise _error(400, "Value for 'type' not supported.")


def _translate_words(text: str, target: str) -> str:
    words = DICTIONARY.get(target.split("-")[0], {})
    return " ".join(words.get(w.lower().strip(".,!?"), w) for w in text.split())


class _ApiError(Exception):
    def __init__(self, response: web.Response) -> None:
        super().__init__(response.status)
        self.response = response


def _error(status: int, message: str, headers: dict[str, str] | None = None) -> _ApiError:
    """DeepL's error shape: a status and a JSON ``message`` (raise it, or return ``.response``)."""
    return _ApiError(web.json_response({"message": message}, status=status, headers=headers))
