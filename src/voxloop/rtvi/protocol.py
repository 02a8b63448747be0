"""The sans-I/O core of RTVI: decode and validate client messages, negotiate the version.

Nothing here needs an event loop: give it what the client sent, get back either a validated
request or the exact answer to send (and a reason to log). It never raises on bad input.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, ValidationError

from .messages import CLIENT_DATA, LABEL, server_message

PROTOCOL_VERSION = "2.1.0"
#: The largest message a client may send: the web client's own WebSocket limit.
DEFAULT_MAX_MESSAGE_BYTES = 1 << 20
#: The longest text a client may hand the LLM or the voice in one message (``send-text``,
#: ``append-to-context``, ``tts:say``): generous for chat, and it bounds the work one message makes.
DEFAULT_MAX_TEXT_CHARS = 16_384
#: A client that sends no version is of the 0.x generation, which sent none.
LEGACY_ASSUMED_VERSION = (0, 3, 0)

_VERSION = re.compile(r"^(\d+)\.(\d+)\.(\d+)$")
_major, _minor, _patch = (int(part) for part in PROTOCOL_VERSION.split("."))
_CURRENT_VERSION = (_major, _minor, _patch)


class RequestError(Exception):
    """A valid request that cannot be carried out; its text goes back as ``error-response``."""


@dataclass(frozen=True)
class ClientRequest:
    """A valid client message: its type, id (if any) and validated data."""

    type: str
    id: str | None
    data: BaseModel


@dataclass(frozen=True)
class Rejection:
    """An invalid message: what to answer (None: drop it) and why, for the log."""

    reply: dict[str, Any] | None
    reason: str


@dataclass(frozen=True)
class Negotiation:
    """The outcome of a ``client-ready``: which protocol generation to speak with this client."""

    client_version: tuple[int, int, int]
    bot_ready_version: str
    #: Sent to the client as an ``error-response`` when set; the session goes on regardless.
    problem: str | None = None

    @property
    def generation(self) -> int:
        """0 for the legacy service/action clients, 1 for 1.x, 2 for the current clients."""
        return min(self.client_version[0], 2)


def negotiate_version(version: Any) -> Negotiation:
    """Decide how to talk to a client from the version in its ``client-ready``."""
    if version is None:
        legacy = ".".join(map(str, LEGACY_ASSUMED_VERSION))
        return Negotiation(LEGACY_ASSUMED_VERSION, legacy)
    match = _VERSION.match(version) if isinstance(version, str) else None
    if match is None:
        problem = f"Invalid client version format ({version}). Compatibility issues may occur."
        return Negotiation(_CURRENT_VERSION, PROTOCOL_VERSION, problem)
    parsed = (int(match[1]), int(match[2]), int(match[3]))
    if parsed[0] == _major:
        return Negotiation(parsed, PROTOCOL_VERSION)
    if parsed[0] < _major:
        return Negotiation(parsed, version)  # older clients get their own version back
    problem = (
        f"RTVI version {version} is not compatible with server protocol {PROTOCOL_VERSION}. "
        "Compatibility issues may occur."
    )
    return Negotiation(parsed, PROTOCOL_VERSION, problem)


def decode_client_message(
    raw: Any, *, max_bytes: int = DEFAULT_MAX_MESSAGE_BYTES
) -> ClientRequest | Rejection:
    """Decode what a client sent (JSON text, bytes, or an already parsed object)."""
    if isinstance(raw, bytes | bytearray):
        if len(raw) > max_bytes:
            return _error(f"RTVI message too large: {len(raw)} bytes (limit {max_bytes})")
        try:
            raw = raw.decode()
        except UnicodeDecodeError:
            return _error("Invalid RTVI message: not UTF-8 text")
    if isinstance(raw, str):
        if len(raw) > max_bytes and len(raw.encode()) > max_bytes:
            return _error(f"RTVI message too large: {len(raw.encode())} bytes (limit {max_bytes})")
        try:
            raw = json.loads(raw)
        except ValueError as exc:
            return _error(f"Invalid RTVI message: not JSON ({exc})")
    if not isinstance(raw, dict):
        return _error(f"Invalid RTVI message: expected a JSON object, got {type(raw).__name__}")
    label = raw.get("label")
    if label != LABEL:
        return Rejection(None, f"ignored a message with label {label!r} (not {LABEL!r})")
    message_type = raw.get("type")
    message_id = raw.get("id")
    if isinstance(message_id, int) and not isinstance(message_id, bool):
        message_id = str(message_id)
    if not isinstance(message_type, str) or not message_type:
        return _error("Invalid RTVI transport message: 'type' must be a non-empty string")
    if message_id is not None and not isinstance(message_id, str):
        return _error("Invalid RTVI transport message: 'id' must be a string")
    model = CLIENT_DATA.get(message_type)
    if model is None:
        return _error_response(message_id, f"Unsupported type {message_type}")
    data = raw.get("data")
    try:
        validated = model.model_validate({} if data is None else data)
    except ValidationError as exc:
        if message_type == "client-ready":
            # The 0.x clients' client-ready carried no (or another) version: such a client is 0.3.0.
            return ClientRequest(message_type, message_id, model.model_validate({}))
        return _error_response(message_id, f"Invalid message: {message_type}: {_summary(exc)}")
    return ClientRequest(message_type, message_id, validated)


def _summary(exc: ValidationError) -> str:
    parts = []
    for error in exc.errors()[:5]:
        where = ".".join(str(part) for part in error["loc"]) or "data"
        parts.append(f"{where}: {error['msg']}")
    return "; ".join(parts)


def _error(reason: str) -> Rejection:
    return Rejection(server_message("error", {"error": reason, "fatal": False}), reason)


def _error_response(message_id: str | None, reason: str) -> Rejection:
    return Rejection(server_message("error-response", {"error": reason}, id=message_id), reason)
