"""What the server needs from each telephony provider: answer its webhook, open its stream, hang up.

Adding a provider is one module, ``<name>.py``, with only what is the provider's own:

1. **Its serializer.** For a stream of JSON text events with base64 audio (Twilio, Telnyx, Plivo;
   Exotel too), subclass :class:`~._json_stream.JsonStreamSerializer`: ``provider``/``label``,
   event names where they differ, ``_start`` (ids, caller, custom parameters into ``CallStarted``),
   ``_media_message``/``_mark_message``/``_clear_message``, and the codec (G.711 by default;
   ``(same_pcm, same_pcm)`` with ``sample_bytes = 2`` for 16-bit PCM). A binary stream (Vonage)
   writes :class:`~._wire.TelephonySerializer` whole. Set ``has_marks`` / ``ends_with_stop``.
2. **Its provider**, a :class:`ProviderBase`: ``name`` (its paths: ``POST /<name>``, ``/<name>/ws``),
   credentials from its usual environment variables, ``verify`` (the signature, with its SDK:
   :func:`form_webhook`, :func:`sdk_missing`, :func:`secret_missing` help), ``_markup`` (and
   ``markup_type`` when the answer is JSON), ``serializer()``, ``hang_up`` and ``_new_client`` (its
   REST SDK; ``rest_client`` lets tests answer it).
3. **Its name** in ``PROVIDERS`` and ``create_provider`` (``__init__.py``).

The transport, the server's routes, pacing, marks and "context == heard" need nothing more. The
test kit's side is the same shape: an ``EmulatedCall`` subclass and an account (``voxloop.testing.
telephony``), then a row in the tables of ``tests/telephony/test_provider_calls.py``.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol
from urllib.parse import parse_qsl

from ._wire import TelephonySerializer

__all__ = [
    "CallInfo",
    "Markup",
    "ProviderBase",
    "TelephonyProvider",
    "WebhookCall",
    "WebhookRefused",
    "connect_stream_xml",
    "form_webhook",
    "xml_document",
]

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
    """One provider: ``name`` is its path (``POST /<name>``, media socket ``/<name>/ws``);
    ``webhook_methods``: how the provider calls the webhook (POST; Exotel's applet also GETs it)."""

    name: str
    webhook_methods: tuple[str, ...]

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


# -- what most providers' webhooks and markup share ------------------------------------------------


def form_webhook(body: bytes, call_key: str) -> tuple[dict[str, str], WebhookCall]:
    """A form-encoded webhook's parameters, and the call they name (``call_key``, ``From``, ``To``)."""
    params = dict(parse_qsl(body.decode("utf-8", "replace"), keep_blank_values=True))
    return params, WebhookCall(params.get(call_key), params.get("From"), params.get("To"))


def sdk_missing(sdk: str) -> WebhookRefused:
    return WebhookRefused(f"checking signatures needs the {sdk} SDK: pip install 'voxloop[telephony]'")


def secret_missing(variable: str) -> WebhookRefused:
    return WebhookRefused(f"{variable} is not set, so the signature cannot be checked")


def xml_document(root: ET.Element) -> str:
    return '<?xml version="1.0" encoding="UTF-8"?>' + ET.tostring(root, encoding="unicode")


def connect_stream_xml(attributes: Mapping[str, str], parameters: Mapping[str, str]) -> str:
    """``<Response><Connect><Stream ...><Parameter name value/>...`` (TwiML, and TeXML after it)."""
    response = ET.Element("Response")
    stream = ET.SubElement(ET.SubElement(response, "Connect"), "Stream", dict(attributes))
    for name, value in parameters.items():
        ET.SubElement(stream, "Parameter", name=name, value=value)
    return xml_document(response)


class ProviderBase:
    """What a :class:`TelephonyProvider` shares: the ``verify`` switch, the markup's media type, and
    the REST client (``rest_client`` makes it when given: tests answer its HTTP; else
    :meth:`_new_client` makes the SDK's with the credentials)."""

    name: str
    markup_type: str = "application/xml"
    webhook_methods: tuple[str, ...] = ("POST",)

    def __init__(self, *, verify: bool, rest_client: Callable[[], Any] | None) -> None:
        self.verify_signatures = verify
        self._rest_client = rest_client

    def markup(self, stream_url: str, parameters: Mapping[str, str]) -> Markup:
        return Markup(self._markup(stream_url, parameters), self.markup_type)

    def _markup(self, stream_url: str, parameters: Mapping[str, str]) -> str:
        raise NotImplementedError

    def _client(self) -> Any:
        return self._rest_client() if self._rest_client is not None else self._new_client()

    def _new_client(self) -> Any:
        raise NotImplementedError
