"""What every provider's media stream says, once its own event shapes are decoded.

A provider's serializer turns each WebSocket message from the provider into one of the events
below (or None for what carries nothing for the pipeline, such as Twilio's ``connected``), and the
bot's side (audio, marks, clear) into that provider's messages. The transport only sees these.
"""

from __future__ import annotations

import base64
import binascii
import json
from dataclasses import dataclass, field
from typing import Any, Protocol

from ..serializers.base import SerializationError

__all__ = [
    "CallAudio",
    "CallDtmf",
    "CallEvent",
    "CallStarted",
    "CallStopped",
    "MarkPlayed",
    "TelephonySerializer",
    "b64decode",
    "json_object",
]

#: A provider's message is refused before parsing when larger than this (a second of 8 kHz L16 in
#: base64 is 21 KB; nothing a provider sends comes near 256 KiB).
MAX_MESSAGE_BYTES = 256 * 1024


@dataclass(frozen=True)
class CallStarted:
    """The stream began: ids, the caller, and the stream's custom parameters."""

    call_id: str
    stream_id: str
    custom_parameters: dict[str, str] = field(default_factory=dict)
    from_number: str | None = None
    to_number: str | None = None


@dataclass(frozen=True)
class CallAudio:
    """Caller audio: mono PCM16 at the serializer's ``sample_rate``."""

    pcm: bytes


@dataclass(frozen=True)
class CallDtmf:
    """A keypad digit the caller pressed."""

    digit: str


@dataclass(frozen=True)
class MarkPlayed:
    """The provider played all the audio sent before the mark called ``name``."""

    name: str


@dataclass(frozen=True)
class CallStopped:
    """The stream ended (the caller hung up, or the call was ended)."""


CallEvent = CallStarted | CallAudio | CallDtmf | MarkPlayed | CallStopped


class TelephonySerializer(Protocol):
    """One call's media stream in one provider's wire format (stateful: it learns the stream's id).

    ``sample_rate``: the rate of the PCM16 it decodes and encodes (8000 for G.711). ``has_marks``:
    whether the provider acknowledges playback (then the transport's context follows the marks).
    ``ends_with_stop``: whether the provider says ``stop`` before closing (else closing is the end).
    ``chunk_ms``: how much audio each bot message carries (40; Exotel asks 100).
    """

    provider: str
    sample_rate: int
    has_marks: bool
    ends_with_stop: bool
    chunk_ms: int

    def parse(self, data: bytes | str) -> CallEvent | None:
        """The event in one provider message (None: nothing for the pipeline); bad input raises
        SerializationError saying what was wrong."""
        ...

    def audio(self, pcm: bytes) -> list[bytes | str]:
        """The messages that play ``pcm`` (mono PCM16 at ``sample_rate``) to the caller (usually one;
        none while a provider with fixed-size frames waits for a whole frame)."""
        ...

    def mark(self, name: str) -> bytes | str | None:
        """The message asking the provider to acknowledge once everything sent so far has played."""
        ...

    def clear(self) -> bytes | str | None:
        """The message that drops the audio the provider has buffered (barge-in)."""
        ...


def json_object(data: bytes | str) -> dict[str, Any]:
    """A provider message parsed as a JSON object, or SerializationError."""
    if len(data) > MAX_MESSAGE_BYTES:
        raise SerializationError(f"message of {len(data)} bytes is over {MAX_MESSAGE_BYTES}")
    try:
        value = json.loads(data)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise SerializationError(f"not JSON: {exc}") from None
    if not isinstance(value, dict):
        raise SerializationError(f"a JSON {type(value).__name__}, not an object")
    return value


def section(message: dict[str, Any], key: str) -> dict[str, Any]:
    """``message[key]``, which must be an object."""
    value = message.get(key)
    if not isinstance(value, dict):
        raise SerializationError(f"{message.get('event')!r} event without a {key!r} object")
    return value


def text_field(obj: dict[str, Any], key: str) -> str:
    """``obj[key]``, which must be a non-empty string."""
    value = obj.get(key)
    if not isinstance(value, str) or not value:
        raise SerializationError(f"missing or non-string {key!r}")
    return value


def b64decode(payload: object, *, sample_bytes: int = 1) -> bytes:
    """A base64 audio payload, which must decode to whole samples."""
    if not isinstance(payload, str):
        raise SerializationError("media payload is not a base64 string")
    try:
        audio = base64.b64decode(payload, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise SerializationError(f"media payload is not base64: {exc}") from None
    if len(audio) % sample_bytes:
        raise SerializationError(
            f"media payload of {len(audio)} bytes is not whole {sample_bytes}-byte samples"
        )
    return audio


def string_map(value: object) -> dict[str, str]:
    """Custom parameters: an object of strings (other values are turned into strings)."""
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise SerializationError("custom parameters are not an object")
    return {str(k): v if isinstance(v, str) else json.dumps(v) for k, v in value.items()}
