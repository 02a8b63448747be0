"""What the server needs from each telephony provider: answer its webhook, open its stream, hang up."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Protocol

from ._wire import TelephonySerializer

__all__ = ["CallInfo", "Markup", "TelephonyProvider", "WebhookCall", "WebhookRefused"]

#: Custom stream parameters the webhook adds and the stream's start hands back (then removed).
TOKEN_PARAMETER = "voxloop_token"
FROM_PARAMETER = "voxloop_from"
TO_PARAMETER = "voxloop_to"
CALL_PARAMETER = "voxloop_call"  # for a stream whose start does not name its call (Vonage)


@dataclass
class CallInfo:
    """The phone call a telephony session carries (``SessionInfo.call``).

    ``provider``: ``"twilio"``, ``"telnyx"``, ... ``call_id``: the provider's id of the call (what a
    hang-up names); ``stream_id``: its id of the media stream. ``from_number`` / ``to_number``: the
    caller and the number called, as the provider gave them (E.164 usually), when it did.
    ``custom_parameters``: what the webhook's markup attached to the stream.
    """

    provider: str
    call_id: str
    stream_id: str
    from_number: str | None = None
    to_number: str | None = None
    custom_parameters: dict[str, str] = field(default_factory=dict)


class WebhookRefused(Exception):
    """The webhook request is not the provider's (unsigned, wrongly signed); the message says why."""


@dataclass(frozen=True)
class WebhookCall:
    """What a verified webhook said about the incoming call."""

    call_id: str | None = None
    from_number: str | None = None
    to_number: str | None = None


@dataclass(frozen=True)
class Markup:
    """The webhook's answer: the provider's call-control document and its media type."""

    body: str
    media_type: str


class TelephonyProvider(Protocol):
    """One provider: ``name`` is its path (``POST /<name>``, media socket ``/<name>/ws``)."""

    name: str

    def verify(self, url: str, headers: Mapping[str, str], body: bytes) -> WebhookCall:
        """Checks the webhook's signature (refusing with WebhookRefused) and reads the call."""
        ...

    def markup(self, stream_url: str, parameters: Mapping[str, str]) -> Markup:
        """The answer that connects the call to the media socket at ``stream_url``, with parameters."""
        ...

    def serializer(self) -> TelephonySerializer:
        """A new serializer for one call's stream."""
        ...

    async def hang_up(self, call: CallInfo) -> None:
        """Ends the call through the provider's REST API."""
        ...
