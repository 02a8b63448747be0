"""Telnyx's side of a call, as its TeXML and media-streaming references describe it.

:class:`TelnyxCloud` is the account: an Ed25519 key pair whose private half signs each webhook
(``telnyx-signature-ed25519`` over ``"<telnyx-timestamp>|<body>"``) and whose public half the
server checks with; its :meth:`~TelnyxCloud.rest_client` is the SDK's ``AsyncTelnyx`` with an HTTP
transport this object answers, so ``calls.actions.hangup`` ends the emulated call.

:class:`TelnyxEmulator` is one call: the TeXML webhook (form-encoded ``CallSid``, ``From``, ``To``,
...), the ``<Connect><Stream>`` answer (``bidirectionalMode="rtp"``), then ``connected``, ``start``
(top-level ``stream_id``, ``start.call_control_id``, ``from``, ``to``, ``custom_parameters``,
``media_format``), 20 ms ``media`` (``track``, ``chunk``, ``timestamp``, ``payload``), ``dtmf``,
``mark`` callbacks once played, ``stop``. The codec is the start's: PCMU, or PCMA when asked.
"""

from __future__ import annotations

import base64
import json
import secrets
import time
import uuid
from typing import Any
from urllib.parse import urlencode

import httpx

from voxloop.audio.g711 import alaw_to_pcm16, pcm16_to_alaw, pcm16_to_ulaw, ulaw_to_pcm16

from ._call import FORM, EmulatedCall, post_webhook
from ._twilio import TwimlStream

__all__ = ["TelnyxCloud", "TelnyxEmulator"]


class TelnyxEmulator(EmulatedCall):
    """One Telnyx call to ``webhook_url`` (the server's ``POST /telnyx``)."""

    def __init__(
        self,
        cloud: TelnyxCloud,
        webhook_url: str,
        *,
        from_number: str = "+13122010094",
        to_number: str = "+13122123456",
        encoding: str = "PCMU",
        signature: str | None = None,
    ) -> None:
        encode, decode = (
            (pcm16_to_alaw, alaw_to_pcm16) if encoding == "PCMA" else (pcm16_to_ulaw, ulaw_to_pcm16)
        )
        super().__init__(encode=encode, decode=decode)
        self.cloud = cloud
        self.webhook_url = webhook_url
        self.call_control_id = self.call_id = "v3:" + secrets.token_urlsafe(30)
        self.stream_id = str(uuid.uuid4()).upper()
        self.from_number = from_number
        self.to_number = to_number
        self.encoding = encoding
        self._forced_signature = signature
        self.texml: str | None = None
        self.stream_url: str | None = None
        self.stream_parameters: dict[str, str] = {}

    async def post_webhook(self) -> httpx.Response:
        body = urlencode(
            {
                "AccountSid": self.cloud.account_sid,
                "CallSid": self.call_control_id,
                "CallSessionId": str(uuid.uuid4()),
                "CallStatus": "ringing",
                "Direction": "inbound",
                "From": self.from_number,
                "To": self.to_number,
            }
        )
        timestamp = str(int(time.time()))
        signature = self._forced_signature or self.cloud.sign(timestamp, body)
        headers = {**FORM, "telnyx-timestamp": timestamp, "telnyx-signature-ed25519": signature}
        return await post_webhook(self.webhook_url, body, headers)

    async def dial(self) -> None:
        reply = await self.post_webhook()
        reply.raise_for_status()
        self.texml = reply.text
        stream = TwimlStream(reply.text)  # TeXML's <Connect><Stream> is TwiML's
        if stream.attributes.get("bidirectionalMode") != "rtp":
            raise ValueError(
                "the stream is not bidirectional (bidirectionalMode='rtp'): the bot could not speak"
            )
        self.stream_url, self.stream_parameters = stream.url, stream.parameters
        await self.open_stream(self.stream_url, self.stream_parameters)

    def _event(self, event: str, **body: Any) -> dict[str, Any]:
        return {"event": event, "sequence_number": self.next_sequence(), **body, "stream_id": self.stream_id}

    def _connected_message(self) -> dict[str, Any]:
        return {"event": "connected", "version": "1.0.0"}

    def _start_message(self, parameters: dict[str, str]) -> dict[str, Any]:
        start = {
            "user_id": self.cloud.account_sid,
            "call_control_id": self.call_control_id,
            "call_session_id": str(uuid.uuid4()),
            "from": self.from_number,
            "to": self.to_number,
            "tags": [],
            "client_state": base64.b64encode(b"voxloop-test").decode(),
            "custom_parameters": parameters,
            "media_format": {"encoding": self.encoding, "sample_rate": 8000, "channels": 1},
        }
        return self._event("start", start=start)

    def _dtmf_message(self, digit: str) -> dict[str, Any]:
        return self._event("dtmf", occurred_at="2026-01-01T00:00:00.000000Z", dtmf={"digit": digit})

    def _stop_message(self) -> dict[str, Any]:
        return self._event(
            "stop", stop={"user_id": self.cloud.account_sid, "call_control_id": self.call_control_id}
        )


class TelnyxCloud:
    """One Telnyx account: signs webhooks, answers Call Control for its calls."""

    def __init__(self) -> None:
        from nacl.signing import SigningKey

        self._signing_key = SigningKey.generate()
        self.public_key = base64.b64encode(bytes(self._signing_key.verify_key)).decode()
        self.api_key = "KEY" + secrets.token_hex(16)
        self.account_sid = str(uuid.uuid4())
        self.calls: dict[str, TelnyxEmulator] = {}
        self.rest_requests: list[tuple[str, str, dict[str, Any]]] = []

    def sign(self, timestamp: str, body: str) -> str:
        signed = self._signing_key.sign(f"{timestamp}|{body}".encode())
        return base64.b64encode(signed.signature).decode()

    def call(self, webhook_url: str, **options: Any) -> TelnyxEmulator:
        emulator = TelnyxEmulator(self, webhook_url, **options)
        self.calls[emulator.call_control_id] = emulator
        return emulator

    def rest_client(self) -> Any:
        from telnyx import AsyncTelnyx

        transport = httpx.MockTransport(self._answer)
        return AsyncTelnyx(api_key=self.api_key, http_client=httpx.AsyncClient(transport=transport))

    async def _answer(self, request: httpx.Request) -> httpx.Response:
        body = json.loads(request.content) if request.content else {}
        self.rest_requests.append((request.method, str(request.url), body))
        if request.headers.get("authorization") != f"Bearer {self.api_key}":
            return httpx.Response(401, json={"errors": [{"code": "10009", "title": "Authentication failed"}]})
        prefix, suffix = "/v2/calls/", "/actions/hangup"
        path = request.url.path
        call_id = path.removeprefix(prefix).removesuffix(suffix)
        emulator = self.calls.get(call_id) if path.startswith(prefix) and path.endswith(suffix) else None
        if request.method != "POST" or emulator is None:
            return httpx.Response(
                404, json={"errors": [{"code": "90018", "title": "Call has already ended"}]}
            )
        await emulator.end_from_api()
        return httpx.Response(200, json={"data": {"result": "ok"}})
