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

import os
from collections.abc import Callable, Mapping
from typing import Any

from ._json_stream import JsonStreamSerializer, check_encoding
from ._provider import (
    CallInfo,
    ProviderBase,
    WebhookCall,
    WebhookRefused,
    connect_stream_xml,
    form_webhook,
    sdk_missing,
    secret_missing,
)
from ._wire import CallStarted, section, string_map, text_field

__all__ = ["TwilioProvider", "TwilioSerializer", "twiml_connect_stream"]

_SIGNATURE_HEADER = "x-twilio-signature"


class TwilioSerializer(JsonStreamSerializer):
    """One Twilio Media Stream (8 kHz mu-law)."""

    provider = "twilio"
    label = "Twilio"

    def _start(self, message: dict[str, Any]) -> CallStarted:
        start = section(message, "start")
        check_encoding("Twilio", start.get("mediaFormat"), "encoding", "audio/x-mulaw")
        self.stream_id = text_field(start, "streamSid")
        return CallStarted(
            call_id=text_field(start, "callSid"),
            stream_id=self.stream_id,
            custom_parameters=string_map(start.get("customParameters")),
        )

    def _media_message(self, payload: str) -> dict[str, Any]:
        return {"event": "media", "streamSid": self.stream_id, "media": {"payload": payload}}

    def _mark_message(self, name: str) -> dict[str, Any]:
        return {"event": "mark", "streamSid": self.stream_id, "mark": {"name": name}}

    def _clear_message(self) -> dict[str, Any]:
        return {"event": "clear", "streamSid": self.stream_id}


def twiml_connect_stream(stream_url: str, parameters: Mapping[str, str]) -> str:
    """``<Response><Connect><Stream url=...><Parameter .../></Stream></Connect></Response>``."""
    return connect_stream_xml({"url": stream_url}, parameters)


class TwilioProvider(ProviderBase):
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
        super().__init__(verify=verify, rest_client=rest_client)
        self.account_sid = account_sid or os.environ.get("TWILIO_ACCOUNT_SID")
        self.auth_token = auth_token or os.environ.get("TWILIO_AUTH_TOKEN")

    def verify(self, url: str, headers: Mapping[str, str], body: bytes) -> WebhookCall:
        params, call = form_webhook(body, "CallSid")
        if self.verify_signatures:
            signature = headers.get(_SIGNATURE_HEADER)
            if not signature:
                raise WebhookRefused("no X-Twilio-Signature header")
            if not self.auth_token:
                raise secret_missing("TWILIO_AUTH_TOKEN")
            try:
                from twilio.request_validator import RequestValidator
            except ImportError:
                raise sdk_missing("twilio") from None
            if not RequestValidator(self.auth_token).validate(url, params, signature):
                raise WebhookRefused("the X-Twilio-Signature does not match this request")
        return call

    def _markup(self, stream_url: str, parameters: Mapping[str, str]) -> str:
        return twiml_connect_stream(stream_url, parameters)

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

    def _new_client(self) -> Any:
        if not (self.account_sid and self.auth_token):
            raise RuntimeError("hanging up needs TWILIO_ACCOUNT_SID and TWILIO_AUTH_TOKEN")
        from twilio.http.async_http_client import AsyncTwilioHttpClient
        from twilio.rest import Client

        return Client(self.account_sid, self.auth_token, http_client=AsyncTwilioHttpClient())
