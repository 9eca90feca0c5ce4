"""Worker authentication: shared tokens, checked once per Socket.IO connection.

Tokens come from ``AUTH_TOKENS`` (comma-separated) and/or ``AUTH_TOKENS_FILE`` (one per line; the Helm
chart mounts a Secret there and rotation needs no restart: the file is re-read when it changes).
A worker presents one in the Socket.IO ``auth`` payload (``{"token": …}``, what browsers can do), an
``Authorization: Bearer …`` header, or the connection URL's query (``?token=…``) when it can set
neither. Comparison is constant-time against every token, so timing reveals
neither which token nor how much of one matched.

Precedence: a connection that presents several is accepted when any is a valid token, and both are
always compared. The alternative readings are worse: letting the payload win (the old behaviour)
refused a worker whose proxy injects the right header while a client library sends a stale payload
token, and requiring both to match adds nothing, since one valid shared token is the whole secret.

``AUTH_MODE=auto`` (the default) requires a token whenever the runtime listens beyond loopback, so a
pod is never open by accident, while ``make run`` on a laptop works with none.
"""

from __future__ import annotations

import hmac
import ipaddress
import logging
from pathlib import Path
from typing import Any
from urllib.parse import unquote, unquote_plus

from livedub.runtime.config import Settings

log = logging.getLogger(__name__)


def _is_loopback(host: str) -> bool:
    if host in ("localhost", ""):
        return host == "localhost"
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _query_tokens(query: str) -> list[str]:
    """The last ``token=`` of a query string, read two ways: %-decoding only (a base64 token's ``+``
    pasted raw into a URL stays ``+``) and form decoding (``+`` as space, what encoders produce)."""
    raw = [value for key, _, value in (part.partition("=") for part in query.split("&")) if key == "token" and value]
    if not raw:
        return []
    return list(dict.fromkeys([unquote(raw[-1]), unquote_plus(raw[-1])]))


class TokenAuthenticator:
    def __init__(self, settings: Settings) -> None:
        self._static = [
            t.strip()
            for t in (settings.auth_tokens.get_secret_value() if settings.auth_tokens else "").split(",")
            if t.strip()
        ]
        self._file = settings.auth_tokens_file
        self._file_stamp: tuple[float, int] | None = None
        self._file_tokens: list[str] = []
        mode = settings.auth_mode
        self.required = mode == "required" or (mode == "auto" and not _is_loopback(settings.host))
        if self.required and not self._tokens():
            raise ValueError(
                f"worker authentication is required (AUTH_MODE={mode}, HOST={settings.host}) but no token is "
                "configured: set AUTH_TOKENS or AUTH_TOKENS_FILE, or AUTH_MODE=disabled for local development"
            )

    def _tokens(self) -> list[str]:
        if self._file is not None:
            try:
                stat = self._file.stat()
                stamp = (stat.st_mtime, stat.st_size)
                if stamp != self._file_stamp:
                    lines = Path(self._file).read_text().splitlines()
                    self._file_tokens = [line.strip() for line in lines if line.strip() and not line.startswith("#")]
                    self._file_stamp = stamp
            except OSError as exc:
                log.warning("cannot read AUTH_TOKENS_FILE", extra={"error": str(exc)})
        return self._static + self._file_tokens

    @staticmethod
    def presented(environ: dict[str, Any], auth: Any) -> list[str]:
        """Every token the connection presents: the ``auth`` payload's, then the header's."""
        tokens = []
        if isinstance(auth, dict) and isinstance(auth.get("token"), str) and auth["token"]:
            tokens.append(str(auth["token"]))
        header = environ.get("HTTP_AUTHORIZATION", "")
        if header.lower().startswith("bearer ") and header[7:].strip():
            tokens.append(str(header[7:].strip()))
        # Workers that can set neither headers nor an auth payload (the media-service worker: only
        # its URL is configurable) put it in the query string. Access logging is off, and no log
        # line of ours prints a query string, so the token is not written anywhere.
        tokens += _query_tokens(str(environ.get("QUERY_STRING", "")))
        return tokens

    def check(self, environ: dict[str, Any], auth: Any) -> str | None:
        """None when the connection may proceed, else the reason it is refused."""
        if not self.required:
            return None
        presented = self.presented(environ, auth)
        if not presented:
            return "missing worker token: send it as auth={'token': ...}, 'Authorization: Bearer ...' or ?token=..."
        # No early exit: compare every presented token against every known one, so timing tells
        # neither which token matched nor which credential carried it.
        matched = False
        known = [token.encode() for token in self._tokens()]
        for candidate in presented:
            # A lone surrogate (from a JSON auth payload) cannot be a token; it must still get the
            # structured refusal, not an encoding error.
            raw = candidate.encode("utf-8", "surrogatepass")
            for token in known:
                matched |= hmac.compare_digest(raw, token)
        return None if matched else "invalid worker token"
