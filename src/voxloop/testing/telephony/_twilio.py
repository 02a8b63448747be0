"""Twilio's side of a call, as its Media Streams and webhook documentation describe it.

:class:`TwilioEmulator` places one call against a voxloop server: it POSTs the voice webhook
(form-encoded ``CallSid``, ``AccountSid``, ``From``, ``To``, ``CallStatus``...) signed with the twilio
SDK's ``RequestValidator``, reads the TwiML answer (``<Connect><Stream url>`` with ``<Parameter>``s),
opens the stream's WebSocket and sends ``connected`` then ``start`` (``streamSid``, ``callSid``,
``accountSid``, ``tracks``, ``customParameters``, ``mediaFormat``), then caller audio as 20 ms
``media`` messages (base64 mu-law, with ``sequenceNumber``, ``chunk`` and ``timestamp``), ``dtmf``
and finally ``stop``. The bot's ``media`` plays on a :class:`PlayoutLine` at real time; each
``mark`` is sent back once its audio has played, and ``clear`` empties the line and returns the
pending marks. Everything the server sends is checked (JSON, known event, this stream's
``streamSid``, base64 payload); what is wrong lands in ``protocol_errors``.

:class:`TwilioCloud` is the account: it places calls and answers the REST API for them: a hang-up
(``calls(sid).update(status="completed")``) ends the stream as Twilio does.
"""

from __future__ import annotations

import json
import secrets
import xml.etree.ElementTree as ET
from typing import Any
from urllib.parse import urlencode

import httpx

from voxloop.audio.g711 import pcm16_to_ulaw, ulaw_to_pcm16

from ._call import FORM, EmulatedCall, ServerMessage, post_webhook

__all__ = ["TwilioEmulator", "TwimlStream"]


class TwimlStream:
    """The ``<Connect><Stream>`` of a TwiML (or TeXML) answer: its ``url``, its other ``attributes``
    and its ``<Parameter>``s."""

    def __init__(self, twiml: str) -> None:
        root = ET.fromstring(twiml)
        if root.tag != "Response":
            raise ValueError(f"TwiML root is <{root.tag}>, not <Response>")
        stream = root.find("./Connect/Stream")
        if stream is None or not stream.get("url"):
            raise ValueError("TwiML has no <Connect><Stream url=...>")
        self.url: str = stream.get("url", "")
        if not self.url.startswith(("wss://", "ws://")) or "?" in self.url:
            raise ValueError(f"the stream url {self.url!r} is not a WebSocket URL without a query string")
        self.attributes = dict(stream.attrib)
        self.parameters = {p.get("name", ""): p.get("value", "") for p in stream.findall("Parameter")}


class TwilioEmulator(EmulatedCall):
    """One Twilio call to ``webhook_url`` (the server's ``POST /twilio``, as its public URL)."""

    def __init__(
        self,
        webhook_url: str,
        auth_token: str,
        *,
        from_number: str = "+15005550006",
        to_number: str = "+15005550001",
        signature: str | None = None,
        account_sid: str | None = None,
    ) -> None:
        super().__init__(encode=pcm16_to_ulaw, decode=ulaw_to_pcm16)
        self.webhook_url = webhook_url
        self.auth_token = auth_token
        self.account_sid = account_sid or "AC" + secrets.token_hex(16)
        self.call_sid = self.call_id = "CA" + secrets.token_hex(16)
        self.stream_sid = self.stream_id = "MZ" + secrets.token_hex(16)
        self.from_number = from_number
        self.to_number = to_number
        self._forced_signature = signature
        self.twiml: str | None = None
        self.stream: TwimlStream | None = None

    # -- the webhook ---------------------------------------------------------------------------

    def webhook_params(self) -> dict[str, str]:
        return {
            "AccountSid": self.account_sid,
            "ApiVersion": "2010-04-01",
            "CallSid": self.call_sid,
            "CallStatus": "ringing",
            "Direction": "inbound",
            "From": self.from_number,
            "To": self.to_number,
        }

    async def post_webhook(self) -> httpx.Response:
        """The voice webhook, signed as Twilio signs it (URL + sorted params, HMAC-SHA1)."""
        from twilio.request_validator import RequestValidator

        params = self.webhook_params()
        signature = self._forced_signature
        if signature is None:
            signature = RequestValidator(self.auth_token).compute_signature(self.webhook_url, params)
        headers = {**FORM, "X-Twilio-Signature": signature}
        return await post_webhook(self.webhook_url, urlencode(params), headers)

    async def dial(self, connect_to: str | None = None) -> None:
        """Webhook, TwiML, then the stream's ``connected`` and ``start``. ``connect_to``: the
        WebSocket URL to really open (the TwiML's public URL may name a tunnel)."""
        reply = await self.post_webhook()
        reply.raise_for_status()
        self.twiml = reply.text
        self.stream = TwimlStream(reply.text)
        await self.open_stream(connect_to or self.stream.url, self.stream.parameters)

    # -- the stream's messages ---------------------------------------------------------------------

    def _event(self, event: str, **body: Any) -> dict[str, Any]:
        return {"event": event, "sequenceNumber": self.next_sequence(), **body, "streamSid": self.stream_sid}

    def _connected_message(self) -> dict[str, Any]:
        return {"event": "connected", "protocol": "Call", "version": "1.0.0"}

    def _start_message(self, parameters: dict[str, str]) -> dict[str, Any]:
        start = {
            "accountSid": self.account_sid,
            "streamSid": self.stream_sid,
            "callSid": self.call_sid,
            "tracks": ["inbound"],
            "customParameters": parameters,
            "mediaFormat": {"encoding": "audio/x-mulaw", "sampleRate": 8000, "channels": 1},
        }
        return self._event("start", start=start)

    def _dtmf_message(self, digit: str) -> dict[str, Any]:
        return self._event("dtmf", dtmf={"track": "inbound_track", "digit": digit})

    def _stop_message(self) -> dict[str, Any]:
        return self._event("stop", stop={"accountSid": self.account_sid, "callSid": self.call_sid})

    def _server_message(self, message: dict[str, Any]) -> ServerMessage | None:
        if message.get("streamSid") != self.stream_sid:
            self.protocol_errors.append(f"{message.get('event')} with streamSid {message.get('streamSid')!r}")
        return super()._server_message(message)

    # -- the REST API ----------------------------------------------------------------------------

    async def rest_request(self, method: str, data: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        """Twilio's answer to a request on this call's resource (``.../Calls/<CallSid>.json``)."""
        if method != "POST":
            return 405, {"code": 20004, "message": "method not allowed", "status": 405}
        status = data.get("Status")
        if status == "completed":
            await self.end_from_api()
        return 200, {"sid": self.call_sid, "account_sid": self.account_sid, "status": status or "in-progress"}


class TwilioCloud:
    """One Twilio account: places emulated calls and answers the REST API for them.

    :meth:`rest_client` is a twilio SDK client whose HTTP requests this object answers (the SDK
    builds them exactly as for the real API); ``rest_requests`` keeps (method, url, form data).
    """

    def __init__(self, auth_token: str, account_sid: str | None = None) -> None:
        self.auth_token = auth_token
        self.account_sid = account_sid or "AC" + secrets.token_hex(16)
        self.calls: dict[str, TwilioEmulator] = {}
        self.rest_requests: list[tuple[str, str, dict[str, Any]]] = []

    def call(self, webhook_url: str, **options: Any) -> TwilioEmulator:
        emulator = TwilioEmulator(webhook_url, self.auth_token, account_sid=self.account_sid, **options)
        self.calls[emulator.call_sid] = emulator
        return emulator

    def rest_client(self) -> Any:
        from twilio.http.async_http_client import AsyncTwilioHttpClient
        from twilio.http.response import Response
        from twilio.rest import Client

        cloud = self

        class _EmulatedHttp(AsyncTwilioHttpClient):  # type: ignore[misc]
            def __init__(self) -> None:
                super().__init__(pool_connections=False)

            async def request(
                self, method: str, url: str, params: Any = None, data: Any = None, **_: Any
            ) -> Any:
                status, body = await cloud._answer(method, url, dict(data or {}))
                return Response(status, json.dumps(body))

        return Client(self.account_sid, self.auth_token, http_client=_EmulatedHttp())

    async def _answer(self, method: str, url: str, data: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        self.rest_requests.append((method, url, data))
        prefix = f"https://api.twilio.com/2010-04-01/Accounts/{self.account_sid}/Calls/"
        call_sid = url.removeprefix(prefix).removesuffix(".json")
        emulator = self.calls.get(call_sid) if url.startswith(prefix) else None
        if emulator is None:
            return 404, {"code": 20404, "message": f"no resource at {url}", "status": 404}
        return await emulator.rest_request(method, data)
