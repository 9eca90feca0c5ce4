"""Structured logs: one JSON object per line, with the stream and fragment ids of the current task.

The ids live in context variables set by the Socket.IO handlers; asyncio copies the context into
every task and ``run_in_executor`` call, so engine logs carry the ids too without passing them
around. Secrets never reach a log line: settings are logged through ``Settings.model_dump`` where
``SecretStr`` prints as ``**********``, and every formatted line (message, fields, traceback) passes
:func:`redact`, because a library may log a raw request — aiohttp logs a malformed request line,
query string included, and workers that can set nothing else send their token as ``?token=``.
"""

from __future__ import annotations

import contextvars
import json
import logging
import re
import sys
import time
from typing import Any

stream_id_var: contextvars.ContextVar[str | None] = contextvars.ContextVar("stream_id", default=None)
fragment_id_var: contextvars.ContextVar[str | None] = contextvars.ContextVar("fragment_id", default=None)

#: ``token=...`` in a query string (raw or %-encoded context) and ``Bearer ...`` credentials.
_SECRETS = re.compile(r"(?i)(token=|bearer\s+)[^&\s'\"\\]+")


def redact(text: str) -> str:
    return _SECRETS.sub(r"\1***", text)


_RESERVED = set(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {"message", "asctime"}


class _ContextFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        record.stream_id = getattr(record, "stream_id", None) or stream_id_var.get()
        record.fragment_id = getattr(record, "fragment_id", None) or fragment_id_var.get()
        return True


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created)) + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        for key, value in vars(record).items():
            if key not in _RESERVED and value is not None and not key.startswith("_"):
                entry[key] = value
        if record.exc_info:
            entry["exc"] = self.formatException(record.exc_info)
        return redact(json.dumps(entry, default=str, ensure_ascii=False))


class ConsoleFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        ids = " ".join(f"{k}={getattr(record, k)}" for k in ("stream_id", "fragment_id") if getattr(record, k, None))
        base = f"{time.strftime('%H:%M:%S')} {record.levelname:<7} {record.name}: {record.getMessage()}"
        text = f"{base} [{ids}]" if ids else base
        return redact(text + ("\n" + self.formatException(record.exc_info) if record.exc_info else ""))


def configure(level: str = "INFO", fmt: str = "json") -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.addFilter(_ContextFilter())
    handler.setFormatter(JsonFormatter() if fmt == "json" else ConsoleFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    # Engine.IO logs every packet at INFO; keep them for DEBUG only.
    for noisy in ("engineio", "socketio", "aiohttp.access", "faster_whisper"):
        logging.getLogger(noisy).setLevel(max(logging.WARNING, logging.getLevelName(level)))
