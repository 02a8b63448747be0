"""Log lines an operator can use: each carries its session id, JSON on request, never a secret.

:data:`session_id` is a context variable the session registry sets when a session starts; every task
the session's pipeline creates inherits it, so every line logged on its behalf names it (``-`` outside
a session). :func:`configure_logging` installs one handler on the root logger with the session filter
and a text or JSON formatter; both formatters pass the finished line through :func:`redact`, so an API
key, a bearer token or a one-time ``/ws`` token is replaced by ``[REDACTED]`` whatever logged it.
"""

from __future__ import annotations

import json
import logging
import os
import re
import sys
from contextvars import ContextVar
from datetime import UTC, datetime
from typing import Any, TextIO

__all__ = ["JsonFormatter", "TextFormatter", "configure_logging", "redact", "session_id", "trace_id"]

session_id: ContextVar[str | None] = ContextVar("voxloop_session_id", default=None)
"""The id of the session the running code works for, or None outside a session."""

trace_id: ContextVar[str | None] = ContextVar("voxloop_trace_id", default=None)
"""The OpenTelemetry trace id (hex) of that session when it is traced: JSON lines carry it."""

REDACTED = "[REDACTED]"
TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s [%(session_id)s]: %(message)s"

# Secrets by shape: OpenAI-style keys, bearer tokens, and key=value / "key": "value" pairs whose key
# names a credential (which also covers the one-time token in a /ws URL's query string).
_PATTERNS = [
    re.compile(r"\bsk-[A-Za-z0-9_\-]{16,}"),
    re.compile(r"(?i)(\bbearer\s+)[A-Za-z0-9._~+/=\-]{8,}"),
    re.compile(
        r"(?i)(\b[\w-]*(?:api[_-]?key|token|secret|password|authorization)[\"']?\s*[:=]\s*[\"']?)"
        r"(?!\[REDACTED\])[^\s\"'&,;}]{4,}"
    ),
]
_SECRET_ENV = re.compile(r"(?i)(KEY|TOKEN|SECRET|PASSWORD)")
_MIN_ENV_SECRET = 8  # shorter values would redact ordinary words


def _env_secrets() -> list[str]:
    """Values of environment variables named like credentials (OPENAI_API_KEY...), longest first."""
    values = {v for k, v in os.environ.items() if _SECRET_ENV.search(k) and len(v) >= _MIN_ENV_SECRET}
    return sorted(values, key=len, reverse=True)


def redact(text: str) -> str:
    """``text`` with every secret it contains replaced by ``[REDACTED]``."""
    for value in _env_secrets():
        if value in text:
            text = text.replace(value, REDACTED)
    for pattern in _PATTERNS:
        text = pattern.sub(lambda m: (m.group(1) if m.lastindex else "") + REDACTED, text)
    return text


class _SessionFilter(logging.Filter):
    """Stamps each record with the current session id (``-`` outside a session)."""

    def filter(self, record: logging.LogRecord) -> bool:
        if not hasattr(record, "session_id"):
            record.session_id = session_id.get() or "-"
        return True


class TextFormatter(logging.Formatter):
    """The human format, ``... name [session]: message``, redacted."""

    def __init__(self) -> None:
        super().__init__(TEXT_FORMAT)

    def format(self, record: logging.LogRecord) -> str:
        if not hasattr(record, "session_id"):
            record.session_id = session_id.get() or "-"
        return redact(super().format(record))


class JsonFormatter(logging.Formatter):
    """One JSON object per line for log shippers: time, level, logger, session id, message, error."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "session_id": getattr(record, "session_id", None) or session_id.get(),
            "message": redact(record.getMessage()),
        }
        if (trace := trace_id.get()) is not None:  # jump from a log line to its conversation's trace
            entry["trace_id"] = trace
        if record.exc_info:
            entry["exception"] = redact(self.formatException(record.exc_info))
        elif record.exc_text:
            entry["exception"] = redact(record.exc_text)
        return json.dumps(entry, ensure_ascii=False)


def configure_logging(level: int = logging.INFO, fmt: str = "text", stream: TextIO | None = None) -> None:
    """Send every log line (voxloop's and libraries') to ``stream`` (stderr) as ``text`` or ``json``."""
    if fmt not in ("text", "json"):
        raise ValueError(f"log format {fmt!r}: use text or json")
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.addFilter(_SessionFilter())
    handler.setFormatter(JsonFormatter() if fmt == "json" else TextFormatter())
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level)
