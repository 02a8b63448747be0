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

import asyncio
import base64
import binascii
import json
import secrets
import xml.etree.ElementTree as ET
from typing import Any
from urllib.parse import urlencode

import httpx
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from voxloop.audio import PCMConverter
from voxloop.audio.g711 import pcm16_to_ulaw, ulaw_to_pcm16

from ._line import FRAME_SECS, PlayoutLine

__all__ = ["TwilioEmulator", "TwimlStream"]


class TwimlStream:
    """The ``<Connect><Stream>`` of a TwiML answer: its ``url`` and ``<Parameter>``s."""

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
        self.parameters = {p.get("name", ""): p.get("value", "") for p in stream.findall("Parameter")}


class TwilioEmulator:
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
        self.webhook_url = webhook_url
        self.auth_token = auth_token
        self.account_sid = account_sid or "AC" + secrets.token_hex(16)
        self.call_sid = "CA" + secrets.token_hex(16)
        self.stream_sid = "MZ" + secrets.token_hex(16)
        self.from_number = from_number
        self.to_number = to_number
        self._forced_signature = signature
        self.twiml: str | None = None
        self.stream: TwimlStream | None = None
        self.protocol_errors: list[str] = []
        self.hung_up_by_server = asyncio.Event()
        self.closed = asyncio.Event()
        self.line = PlayoutLine(8000, ulaw_to_pcm16, self._ack_mark)
        self._socket: ClientConnection | None = None
        self._reader: asyncio.Task[None] | None = None
        self._sequence = 0
        self._chunk = 0
        self._media_ms = 0
        self._converter = PCMConverter(8000)

    # -- the call ------------------------------------------------------------------------------

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
        async with httpx.AsyncClient() as http:
            return await http.post(
                self.webhook_url,
                content=urlencode(params),
                headers={
                    "Content-Type": "application/x-www-form-urlencoded",
                    "X-Twilio-Signature": signature,
                },
            )

    async def dial(self, connect_to: str | None = None) -> None:
        """Webhook, TwiML, then the stream's ``connected`` and ``start``. ``connect_to``: the
        WebSocket URL to really open (the TwiML's public URL may name a tunnel)."""
        reply = await self.post_webhook()
        reply.raise_for_status()
        self.twiml = reply.text
        self.stream = TwimlStream(reply.text)
        await self.open_stream(connect_to or self.stream.url, self.stream.parameters)

    async def open_stream(self, url: str, parameters: dict[str, str]) -> None:
        self._socket = await connect(url, max_size=None)
        self.line.start()
        self._reader = asyncio.create_task(self._read(), name="twilio-emulator-read")
        await self.send({"event": "connected", "protocol": "Call", "version": "1.0.0"})
        start = {
            "accountSid": self.account_sid,
            "streamSid": self.stream_sid,
            "callSid": self.call_sid,
            "tracks": ["inbound"],
            "customParameters": parameters,
            "mediaFormat": {"encoding": "audio/x-mulaw", "sampleRate": 8000, "channels": 1},
        }
        await self.send_event("start", start=start)

    async def send(self, message: dict[str, Any] | str) -> None:
        """Send one message as it is (a dict as JSON): for malformed-input tests too."""
        assert self._socket is not None, "dial() first"
        await self._socket.send(message if isinstance(message, str) else json.dumps(message))

    async def send_event(self, event: str, **body: Any) -> None:
        self._sequence += 1
        await self.send(
            {"event": event, "sequenceNumber": str(self._sequence), **body, "streamSid": self.stream_sid}
        )

    async def send_audio(self, pcm: bytes, sample_rate: int, *, realtime: bool = True) -> None:
        """The caller speaks: ``pcm`` (mono PCM16) as 20 ms mu-law media messages, at real time."""
        ulaw = pcm16_to_ulaw(self._converter.convert(pcm, sample_rate, 1))
        loop = asyncio.get_running_loop()
        deadline = loop.time()
        for start in range(0, len(ulaw), 160):
            payload = base64.b64encode(ulaw[start : start + 160]).decode("ascii")
            self._chunk += 1
            media = {
                "track": "inbound",
                "chunk": str(self._chunk),
                "timestamp": str(self._media_ms),
                "payload": payload,
            }
            self._media_ms += 20
            await self.send_event("media", media=media)
            if realtime:
                deadline += FRAME_SECS
                await asyncio.sleep(max(0.0, deadline - loop.time()))

    async def send_silence(self, seconds: float) -> None:
        await self.send_audio(bytes(int(seconds * 8000) * 2), 8000)

    async def press(self, digit: str) -> None:
        await self.send_event("dtmf", dtmf={"track": "inbound_track", "digit": digit})

    async def hang_up(self) -> None:
        """The caller hangs up: ``stop``, then the socket closes."""
        await self.send_event("stop", stop={"accountSid": self.account_sid, "callSid": self.call_sid})
        await self.close()

    async def close(self) -> None:
        if self._socket is not None:
            await self._socket.close()
        if self._reader is not None:
            await asyncio.gather(self._reader, return_exceptions=True)
        await self.line.stop()

    async def __aenter__(self) -> TwilioEmulator:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    # -- waiting -------------------------------------------------------------------------------

    async def wait_for_played(self, seconds: float, timeout: float = 30.0, *, voiced: bool = True) -> None:
        """Until ``seconds`` of bot audio (louder than silence when ``voiced``) have played."""

        def done() -> bool:
            played = self.line.voiced_secs() if voiced else len(self.line.played) / 16000
            return played >= seconds

        async with asyncio.timeout(timeout), self.line.progress:
            await self.line.progress.wait_for(done)

    async def wait_for_quiet_line(self, timeout: float = 30.0) -> None:
        """Until everything sent has played and every mark has come back."""
        async with asyncio.timeout(timeout), self.line.progress:
            await self.line.progress.wait_for(lambda: self.line.buffered_secs == 0 and not self.line._marks)

    # -- the server's messages -------------------------------------------------------------------

    async def _ack_mark(self, name: str) -> None:
        try:
            await self.send_event("mark", mark={"name": name})
        except ConnectionClosed:
            pass

    async def _read(self) -> None:
        assert self._socket is not None
        try:
            async for data in self._socket:
                await self._handle(data)
        except ConnectionClosed:
            pass
        finally:
            self.closed.set()

    async def _handle(self, data: str | bytes) -> None:
        if isinstance(data, bytes):
            self.protocol_errors.append("a binary message (Twilio takes JSON text)")
            return
        try:
            message = json.loads(data)
        except json.JSONDecodeError:
            self.protocol_errors.append(f"not JSON: {data[:80]!r}")
            return
        event = message.get("event") if isinstance(message, dict) else None
        if message.get("streamSid") != self.stream_sid:
            self.protocol_errors.append(f"{event} with streamSid {message.get('streamSid')!r}")
        if event == "media":
            try:
                self.line.receive_audio(base64.b64decode(message["media"]["payload"], validate=True))
            except (KeyError, TypeError, binascii.Error) as exc:
                self.protocol_errors.append(f"bad media message: {exc!r}")
        elif event == "mark":
            name = message.get("mark", {}).get("name") if isinstance(message.get("mark"), dict) else None
            if not isinstance(name, str):
                self.protocol_errors.append(f"mark without a name: {message!r}")
                return
            await self.line.receive_mark(name)
        elif event == "clear":
            await self.line.receive_clear()
        else:
            self.protocol_errors.append(f"unknown event {event!r}")

    # -- the REST API ----------------------------------------------------------------------------

    async def rest_request(self, method: str, data: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        """Twilio's answer to a request on this call's resource (``.../Calls/<CallSid>.json``)."""
        if method != "POST":
            return 405, {"code": 20004, "message": "method not allowed", "status": 405}
        status = data.get("Status")
        if status == "completed":
            self.hung_up_by_server.set()
            try:
                await self.send_event("stop", stop={"accountSid": self.account_sid, "callSid": self.call_sid})
            except ConnectionClosed:
                pass
            if self._socket is not None:
                await self._socket.close()
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
