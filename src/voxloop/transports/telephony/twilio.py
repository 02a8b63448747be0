"""Twilio: Media Streams (bidirectional, ``<Connect><Stream>``), its webhook and its REST hang-up.

The stream's messages, as Twilio documents them: from Twilio ``connected``, ``start`` (``streamSid``,
``start.callSid``, ``start.customParameters``, ``start.mediaFormat``), ``media`` (``media.payload``:
base64 8 kHz mu-law, ``media.track``), ``dtmf`` (``dtmf.digit``), ``mark`` (``mark.name``, once the
audio sent before it has played, or when a ``clear`` dropped it) and ``stop``; to Twilio ``media``,
``mark`` and ``clear``, each with the ``streamSid``.

The webhook (``POST /twilio``, form-encoded, ``CallSid``/``From``/``To``) is checked with the SDK's
``RequestValidator`` against ``X-Twilio-Signature`` and ``TWILIO_AUTH_TOKEN``; it is answered with
TwiML whose ``<Stream>`` carries the caller and a one-time token as ``<Parameter>``s (Twilio does not
allow a query string on the stream's URL). Hanging up is ``calls(sid).update(status="completed")``.
"""

from __future__ import annotations

import base64
import json
import os
import xml.etree.ElementTree as ET
from collections.abc import Callable, Mapping
from typing import Any
from urllib.parse import parse_qsl

from ...audio.g711 import pcm16_to_ulaw, ulaw_to_pcm16
from ..serializers.base import SerializationError
from ._provider import CallInfo, Markup, WebhookCall, WebhookRefused
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
    string_map,
    text_field,
)

__all__ = ["TwilioProvider", "TwilioSerializer", "twiml_connect_stream"]

_SIGNATURE_HEADER = "x-twilio-signature"


class TwilioSerializer:
    """One Twilio Media Stream (8 kHz mu-law)."""

    provider = "twilio"
    sample_rate = 8000
    has_marks = True
    ends_with_stop = True

    def __init__(self) -> None:
        self.stream_sid: str | None = None

    def parse(self, data: bytes | str) -> CallEvent | None:
        message = json_object(data)
        event = message.get("event")
        if event == "media":
            media = section(message, "media")
            if media.get("track", "inbound") != "inbound":
                return None  # only the caller's track is the user
            return CallAudio(ulaw_to_pcm16(b64decode(media.get("payload"))))
        if event == "mark":
            return MarkPlayed(text_field(section(message, "mark"), "name"))
        if event == "dtmf":
            return CallDtmf(text_field(section(message, "dtmf"), "digit"))
        if event == "start":
            return self._start(message)
        if event == "stop":
            return CallStopped()
        if event == "connected":
            return None
        raise SerializationError(f"unknown Twilio event {event!r}")

    def _start(self, message: dict[str, Any]) -> CallStarted:
        start = section(message, "start")
        media_format = start.get("mediaFormat")
        if (
            isinstance(media_format, dict)
            and media_format.get("encoding", "audio/x-mulaw") != "audio/x-mulaw"
        ):
            raise SerializationError(f"unsupported Twilio media encoding {media_format.get('encoding')!r}")
        self.stream_sid = text_field(start, "streamSid")
        return CallStarted(
            call_id=text_field(start, "callSid"),
            stream_id=self.stream_sid,
            custom_parameters=string_map(start.get("customParameters")),
        )

    def audio(self, pcm: bytes) -> list[bytes | str]:
        payload = base64.b64encode(pcm16_to_ulaw(pcm)).decode("ascii")
        return [json.dumps({"event": "media", "streamSid": self.stream_sid, "media": {"payload": payload}})]

    def mark(self, name: str) -> str:
        return json.dumps({"event": "mark", "streamSid": self.stream_sid, "mark": {"name": name}})

    def clear(self) -> str:
        return json.dumps({"event": "clear", "streamSid": self.stream_sid})


def twiml_connect_stream(stream_url: str, parameters: Mapping[str, str]) -> str:
    """``<Response><Connect><Stream url=...><Parameter .../></Stream></Connect></Response>``."""
    response = ET.Element("Response")
    stream = ET.SubElement(ET.SubElement(response, "Connect"), "Stream", url=stream_url)
    for name, value in parameters.items():
        ET.SubElement(stream, "Parameter", name=name, value=value)
    return '<?xml version="1.0" encoding="UTF-8"?>' + ET.tostring(response, encoding="unicode")


class TwilioProvider:
    """Twilio's side of ``voxloop run --transport twilio``.

    Credentials: ``TWILIO_ACCOUNT_SID`` and ``TWILIO_AUTH_TOKEN`` (arguments win). ``verify=False``
    accepts unsigned webhooks (local testing only). ``rest_client``: makes the SDK's REST client
    (tests point it at a recording HTTP client).
    """

    name = "twilio"

    def __init__(
        self,
        account_sid: str | None = None,
        auth_token: str | None = None,
        *,
        verify: bool = True,
        rest_client: Callable[[], Any] | None = None,
    ) -> None:
        self.account_sid = account_sid or os.environ.get("TWILIO_ACCOUNT_SID")
        self.auth_token = auth_token or os.environ.get("TWILIO_AUTH_TOKEN")
        self.verify_signatures = verify
        self._rest_client = rest_client

    def verify(self, url: str, headers: Mapping[str, str], body: bytes) -> WebhookCall:
        params = dict(parse_qsl(body.decode("utf-8", "replace"), keep_blank_values=True))
        if self.verify_signatures:
            signature = headers.get(_SIGNATURE_HEADER)
            if not signature:
                raise WebhookRefused("no X-Twilio-Signature header")
            if not self.auth_token:
                raise WebhookRefused("TWILIO_AUTH_TOKEN is not set, so the signature cannot be checked")
            try:
                from twilio.request_validator import RequestValidator
            except ImportError:
                raise WebhookRefused(
                    "checking signatures needs the twilio SDK: pip install 'voxloop[telephony]'"
                ) from None
            if not RequestValidator(self.auth_token).validate(url, params, signature):
                raise WebhookRefused("the X-Twilio-Signature does not match this request")
        return WebhookCall(
            call_id=params.get("CallSid"), from_number=params.get("From"), to_number=params.get("To")
        )

    def markup(self, stream_url: str, parameters: Mapping[str, str]) -> Markup:
        return Markup(twiml_connect_stream(stream_url, parameters), "application/xml")

    def serializer(self) -> TwilioSerializer:
        return TwilioSerializer()

    async def hang_up(self, call: CallInfo) -> None:
        client = self._client()
        try:
            await client.calls(call.call_id).update_async(status="completed")
        finally:
            close = getattr(client.http_client, "close", None)
            if close is not None:
                await close()

    def _client(self) -> Any:
        if self._rest_client is not None:
            return self._rest_client()
        if not (self.account_sid and self.auth_token):
            raise RuntimeError("hanging up needs TWILIO_ACCOUNT_SID and TWILIO_AUTH_TOKEN")
        from twilio.http.async_http_client import AsyncTwilioHttpClient
        from twilio.rest import Client

        return Client(self.account_sid, self.auth_token, http_client=AsyncTwilioHttpClient())
