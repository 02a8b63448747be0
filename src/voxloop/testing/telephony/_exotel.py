"""Exotel's side of a call, as its Voicebot applet and AgentStream protocol documentation describe it.

:class:`ExotelCloud` is the account: the API key and token the applet's URL carries as HTTP Basic
credentials, and its calls. Exotel's API has no call to end a Voicebot call, so the account answers
no REST requests: a call ends when the caller hangs up (``stop``, reason ``callended``) or when the
server closes the stream, after which the flow's next applet (a Hangup, here) ends the call.

:class:`ExotelEmulator` is one call through a flow whose Voicebot applet has a dynamic https URL:
the applet fetches it (``GET`` with ``CallSid``, ``CallFrom``, ``CallTo``, ``Direction``, as
Exotel's other dynamic URLs are called, and ``Authorization: Basic``), reads ``{"url": "wss://..."}``,
opens that socket and sends ``connected`` then ``start`` (``stream_sid``, ``call_sid``,
``account_sid``, ``from``, ``to``, the URL's query as ``custom_parameters``, ``media_format``), then
the caller's audio as ``media`` every 100 ms (1.6 KB of base64 8 kHz 16-bit PCM), ``dtmf``, a
``mark`` for each of the server's marks once the audio before it has played, and ``stop``. Every
bot ``media`` must be whole 320-byte blocks, at most 100 KB; what is wrong lands in
``protocol_errors``.
"""

from __future__ import annotations

import base64
import binascii
import secrets
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import httpx

from ._call import EmulatedCall, ServerMessage

__all__ = ["ExotelCloud", "ExotelEmulator"]

BLOCK_BYTES = 320  # Exotel: bot audio "must be a multiple of 320 bytes"
MAX_MEDIA_BYTES = 100 * 1024  # and at most 100 KB a message


def _same(pcm: bytes) -> bytes:
    return pcm


class ExotelEmulator(EmulatedCall):
    """One Exotel call whose Voicebot applet fetches ``webhook_url`` (the server's ``/exotel``)."""

    media_ms = 100  # Exotel "streams raw PCM audio every ~100 ms"

    def __init__(
        self,
        cloud: ExotelCloud,
        webhook_url: str,
        *,
        credentials: tuple[str, str] | None = None,  # the Basic pair the applet's URL carries
        from_number: str = "+919876543210",
        to_number: str = "+918047491899",
    ) -> None:
        super().__init__(encode=_same, decode=_same, wire_bytes_per_sec=16000, pcm_rate=8000)
        self.cloud = cloud
        self.webhook_url = webhook_url
        self.call_id = secrets.token_hex(16)  # Exotel's call_sid and stream_sid
        self.stream_id = secrets.token_hex(16)
        self.from_number = from_number
        self.to_number = to_number
        self._credentials = credentials or (cloud.api_key, cloud.api_token)
        self._caller_left = False
        self.stream_url: str | None = None

    async def __aenter__(self) -> ExotelEmulator:
        return self

    async def post_webhook(self) -> httpx.Response:
        """The applet fetching its dynamic URL (the name says webhook, as for the other providers)."""
        params = {
            "CallSid": self.call_id,
            "CallFrom": self.from_number,
            "CallTo": self.to_number,
            "Direction": "incoming",
        }
        async with httpx.AsyncClient() as http:
            return await http.get(self.webhook_url, params=params, auth=self._credentials)

    async def dial(self) -> None:
        reply = await self.post_webhook()
        reply.raise_for_status()
        url = reply.json().get("url")
        if not isinstance(url, str) or not url.startswith(("wss://", "ws://")):
            raise ValueError(f"the dynamic URL did not answer a ws(s) URL: {reply.text}")
        self.stream_url = url
        # The applet's custom parameters are the URL's query, handed back in the start.
        parameters = dict(parse_qsl(urlsplit(url).query))
        if len(parameters) > 3 or len(urlsplit(url).query) > 256:
            raise ValueError(f"more custom parameters than Exotel keeps (3, 256 characters): {url}")
        await self.open_stream(url, parameters)

    # -- the stream's messages ---------------------------------------------------------------------

    def _event(self, event: str, **body: Any) -> dict[str, Any]:
        return {
            "event": event,
            "sequence_number": self.next_sequence(),
            "stream_sid": self.stream_id,
            **body,
        }

    def _connected_message(self) -> dict[str, Any]:
        return {"event": "connected"}

    def _start_message(self, parameters: dict[str, str]) -> dict[str, Any]:
        start = {
            "stream_sid": self.stream_id,
            "call_sid": self.call_id,
            "account_sid": self.cloud.account_sid,
            "from": self.from_number,
            "to": self.to_number,
            "custom_parameters": parameters,
            "media_format": {"encoding": "audio/x-raw", "sample_rate": "8000", "bit_rate": "16"},
        }
        return self._event("start", start=start)

    def _media_message(self, payload: str, chunk: int, timestamp_ms: int) -> dict[str, Any]:
        return self._event(
            "media", media={"chunk": str(chunk), "timestamp": str(timestamp_ms), "payload": payload}
        )

    def _dtmf_message(self, digit: str) -> dict[str, Any]:
        return self._event("dtmf", dtmf={"digit": digit, "duration": "100"})

    def _stop_message(self) -> dict[str, Any]:
        stop = {"call_sid": self.call_id, "account_sid": self.cloud.account_sid, "reason": "callended"}
        return self._event("stop", stop=stop)

    def _server_message(self, message: dict[str, Any]) -> ServerMessage | None:
        if message.get("stream_sid") != self.stream_id:
            self.protocol_errors.append(
                f"{message.get('event')} with stream_sid {message.get('stream_sid')!r}"
            )
        if message.get("event") == "media":
            return self._bot_audio(message)
        # mark and clear. Whether Exotel returns the marks of the audio a clear drops is not
        # documented: the line returns them, as Twilio does, and the server must ignore them.
        return super()._server_message(message)

    def _bot_audio(self, message: dict[str, Any]) -> ServerMessage | None:
        media = message.get("media")
        try:
            audio = base64.b64decode(media["payload"], validate=True)  # type: ignore[index]
        except (KeyError, TypeError, binascii.Error) as exc:
            self.protocol_errors.append(f"bad media message: {exc!r}")
            return None
        if len(audio) % BLOCK_BYTES or not audio or len(audio) > MAX_MEDIA_BYTES:
            self.protocol_errors.append(f"bot media of {len(audio)} bytes, not whole 320-byte blocks")
        return "media", audio

    # -- the end of the call -----------------------------------------------------------------------

    async def hang_up(self) -> None:
        self._caller_left = True  # before the stop: the server may close the socket at once
        await super().hang_up()

    async def close(self) -> None:
        self._caller_left = True
        await super().close()

    async def _read(self) -> None:
        await super()._read()
        if not self._caller_left:
            # The server closed the stream: the Voicebot applet is over and the flow's next applet,
            # a Hangup, ends the call.
            self.hung_up_by_server.set()


class ExotelCloud:
    """One Exotel account (``account_sid``, ``api_key``, ``api_token``) and the calls it places."""

    def __init__(self) -> None:
        self.account_sid = "exotel" + secrets.token_hex(4)
        self.api_key = secrets.token_hex(20)
        self.api_token = secrets.token_hex(20)
        self.calls: dict[str, ExotelEmulator] = {}
        self.rest_requests: list[tuple[str, str, dict[str, Any]]] = []  # stays empty: no API call ends a call

    def call(self, webhook_url: str, **options: Any) -> ExotelEmulator:
        emulator = ExotelEmulator(self, webhook_url, **options)
        self.calls[emulator.call_id] = emulator
        return emulator
