"""A media stream of JSON text events with base64 audio: the shape Twilio, Telnyx and Plivo share.

Each message is an object whose ``event`` names it; caller audio is ``media.payload`` (base64),
keys are ``dtmf.digit``. What differs from one provider to the next is small, so a provider's
serializer subclasses :class:`JsonStreamSerializer` and gives only that:

- the names of its events (``media_event``, ``mark_event``, ``stop_event``, ``ignored_events``);
- :meth:`~JsonStreamSerializer._start`: its ``start`` read into a :class:`CallStarted`;
- :meth:`~JsonStreamSerializer._mark_name` when its mark acknowledgement is not ``mark.name``;
- the three messages to it: :meth:`~JsonStreamSerializer._media_message`, ``_mark_message``,
  ``_clear_message``;
- its codec (``decode``/``encode`` between wire bytes and PCM16, ``sample_bytes`` per sample):
  G.711 by default, or 16-bit PCM (:func:`same_pcm`) for a provider that streams L16.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Callable
from typing import Any

from ...audio.g711 import alaw_to_pcm16, pcm16_to_alaw, pcm16_to_ulaw, ulaw_to_pcm16
from ..serializers.base import SerializationError
from ._wire import (
    CallAudio,
    CallDtmf,
    CallEvent,
    CallStarted,
    CallStopped,
    MarkPlayed,
    b64decode,
    json_object,
    section,
    text_field,
)

__all__ = ["CODECS", "Codec", "JsonStreamSerializer", "check_encoding", "same_pcm"]

#: Wire bytes to PCM16, and PCM16 to wire bytes.
Codec = tuple[Callable[[bytes], bytes], Callable[[bytes], bytes]]


def same_pcm(pcm: bytes) -> bytes:
    """The codec of a provider that streams 16-bit PCM as it is."""
    return pcm


#: The 8 kHz codecs by their RTP names.
CODECS: dict[str, Codec] = {"PCMU": (ulaw_to_pcm16, pcm16_to_ulaw), "PCMA": (alaw_to_pcm16, pcm16_to_alaw)}


def check_encoding(provider: str, media_format: object, key: str, expected: str) -> None:
    """Refuses a start whose ``media_format[key]`` is given and is not ``expected``."""
    if isinstance(media_format, dict) and media_format.get(key, expected) != expected:
        raise SerializationError(f"unsupported {provider} media encoding {media_format.get(key)!r}")


class JsonStreamSerializer:
    """One call's stream of JSON events (see the module docstring for what a subclass gives)."""

    provider: str
    label: str  # the provider's name in error messages ("Twilio")
    sample_rate: int = 8000
    has_marks: bool = True
    ends_with_stop: bool = True
    chunk_ms: int = 40  # the audio in each bot message
    media_event: str = "media"
    mark_event: str = "mark"
    dtmf_event: str = "dtmf"
    stop_event: str | None = "stop"
    #: Events that carry nothing for the pipeline (a greeting, the acknowledgement of a clear).
    ignored_events: frozenset[str] = frozenset({"connected"})
    sample_bytes: int = 1

    def __init__(self, codec: Codec = CODECS["PCMU"]) -> None:
        self.stream_id: str | None = None  # learnt from the start; the messages to the provider name it
        self._decode, self._encode = codec

    # -- what a provider gives -------------------------------------------------------------------

    def _start(self, message: dict[str, Any]) -> CallStarted:
        raise NotImplementedError

    def _mark_name(self, message: dict[str, Any]) -> str:
        return text_field(section(message, "mark"), "name")

    def _media_message(self, payload: str) -> dict[str, Any]:
        raise NotImplementedError

    def _mark_message(self, name: str) -> dict[str, Any]:
        raise NotImplementedError

    def _clear_message(self) -> dict[str, Any]:
        raise NotImplementedError

    def _other_event(self, event: object, message: dict[str, Any]) -> CallEvent | None:
        """An event none of the names above matched: unknown, unless a provider knows it."""
        raise SerializationError(f"unknown {self.label} event {event!r}")

    # -- the serializer ------------------------------------------------------------------------------

    def parse(self, data: bytes | str) -> CallEvent | None:
        message = json_object(data)
        event = message.get("event")
        if event == self.media_event:
            media = section(message, "media")
            if media.get("track", "inbound") != "inbound":
                return None  # only the caller's track is the user
            return CallAudio(self._decode(b64decode(media.get("payload"), sample_bytes=self.sample_bytes)))
        if event == self.mark_event:
            return MarkPlayed(self._mark_name(message))
        if event == self.dtmf_event:
            return CallDtmf(text_field(section(message, "dtmf"), "digit"))
        if event == "start":
            return self._start(message)
        if event == self.stop_event:
            return CallStopped()
        if event in self.ignored_events:
            return None
        return self._other_event(event, message)

    def audio(self, pcm: bytes) -> list[bytes | str]:
        payload = base64.b64encode(self._encode(pcm)).decode("ascii")
        return [json.dumps(self._media_message(payload))]

    def mark(self, name: str) -> str:
        return json.dumps(self._mark_message(name))

    def clear(self) -> str:
        return json.dumps(self._clear_message())
