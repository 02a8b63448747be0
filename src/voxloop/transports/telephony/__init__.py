"""Phone calls as a transport: the providers' bidirectional media-stream WebSockets.

One :class:`TelephonyTransport` per call, with the provider's serializer (its event shapes, G.711
to and from PCM16) and its :class:`TelephonyProvider` (the webhook's signature and markup, the REST
hang-up). See ``docs/telephony.md`` for pointing a real number at ``voxloop run``.
"""

from __future__ import annotations

from ._provider import (
    CALL_PARAMETER,
    FROM_PARAMETER,
    TO_PARAMETER,
    TOKEN_PARAMETER,
    CallInfo,
    Markup,
    TelephonyProvider,
    WebhookCall,
    WebhookRefused,
)
from ._transport import HangUp, TelephonyTransport, telephony_params
from ._wire import CallAudio, CallDtmf, CallEvent, CallStarted, CallStopped, MarkPlayed, TelephonySerializer

__all__ = [
    "CALL_PARAMETER",
    "FROM_PARAMETER",
    "PROVIDERS",
    "TOKEN_PARAMETER",
    "TO_PARAMETER",
    "CallInfo",
    "CallAudio",
    "CallDtmf",
    "CallEvent",
    "CallStarted",
    "CallStopped",
    "HangUp",
    "MarkPlayed",
    "Markup",
    "TelephonyProvider",
    "TelephonySerializer",
    "TelephonyTransport",
    "WebhookCall",
    "WebhookRefused",
    "create_provider",
    "telephony_params",
]

#: The providers ``voxloop run --transport`` knows.
PROVIDERS = ("twilio", "telnyx", "plivo", "vonage", "exotel")


def create_provider(name: str, *, verify: bool = True) -> TelephonyProvider:
    """The provider called ``name``, with its credentials from the environment."""
    if name == "twilio":
        from .twilio import TwilioProvider

        return TwilioProvider(verify=verify)
    if name == "telnyx":
        from .telnyx import TelnyxProvider

        return TelnyxProvider(verify=verify)
    if name == "plivo":
        from .plivo import PlivoProvider

        return PlivoProvider(verify=verify)
    if name == "vonage":
        from .vonage import VonageProvider

        return VonageProvider(verify=verify)
    if name == "exotel":
        from .exotel import ExotelProvider

        return ExotelProvider(verify=verify)
    raise ValueError(f"unknown telephony provider {name!r}: use one of {', '.join(PROVIDERS)}")
