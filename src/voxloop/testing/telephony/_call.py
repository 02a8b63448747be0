"""What every provider emulator shares: one call's media socket, caller audio at real time, the line.

A subclass gives the provider's shapes: the webhook it posts (:func:`post_webhook` sends it) and
the markup it reads (:meth:`dial`), its envelope (:meth:`_event`), its ``start`` / ``dtmf`` /
``stop`` messages and, where they differ from Twilio's shape (``media.payload``, ``mark.name``,
``clear``), its ``media`` and mark messages and how it reads and checks the server's messages
(:meth:`_server_message`). It sets ``call_id`` (what a hang-up names) and ``stream_id``. Everything
the server sends that is wrong lands in ``protocol_errors``.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import json
from collections.abc import Callable, Mapping
from typing import Any, Self

import httpx
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from voxloop.audio import PCMConverter

from ._line import PlayoutLine

__all__ = ["EmulatedCall", "ServerMessage", "post_webhook"]

#: What a server message means to the line: ("media", audio bytes), ("mark", name), ("clear", None).
ServerMessage = tuple[str, Any]


class EmulatedCall:
    """One call's media stream, provider side. ``encode``/``decode``: the wire codec to/from PCM16."""

    #: The caller's audio in one media message: 20 ms, unless the provider sends more (Exotel).
    media_ms = 20

    from_number: str  # the caller, and the number called: set by the subclass
    to_number: str

    def __init__(
        self,
        *,
        encode: Callable[[bytes], bytes],
        decode: Callable[[bytes], bytes],
        wire_bytes_per_sec: int = 8000,
        pcm_rate: int = 8000,
    ) -> None:
        self.call_id = ""  # the provider's id of the call, and of its stream: set by the subclass
        self.stream_id = ""
        self.protocol_errors: list[str] = []
        self.hung_up_by_server = asyncio.Event()
        self.closed = asyncio.Event()
        self.line = PlayoutLine(wire_bytes_per_sec, decode, self._ack_mark, pcm_rate=pcm_rate)
        self._encode = encode
        self._socket: ClientConnection | None = None
        self._reader: asyncio.Task[None] | None = None
        self._sequence = 0
        self._chunk = 0
        self._media_ms = 0
        self._converter = PCMConverter(pcm_rate)
        self._frame_bytes = wire_bytes_per_sec * self.media_ms // 1000  # one media message

    # -- what a provider gives ---------------------------------------------------------------------

    def _event(self, event: str, **body: Any) -> dict[str, Any]:
        """The provider's envelope of one event (its sequence number, its stream id)."""
        raise NotImplementedError

    def _start_message(self, parameters: dict[str, str]) -> dict[str, Any]:
        raise NotImplementedError

    def _media_message(self, payload: str, chunk: int, timestamp_ms: int) -> dict[str, Any]:
        media = {"track": "inbound", "chunk": str(chunk), "timestamp": str(timestamp_ms), "payload": payload}
        return self._event("media", media=media)

    def _dtmf_message(self, digit: str) -> dict[str, Any]:
        raise NotImplementedError

    def _mark_message(self, name: str) -> dict[str, Any]:
        return self._event("mark", mark={"name": name})

    def _stop_message(self) -> dict[str, Any] | None:
        """None for a provider that ends a stream by closing it."""
        raise NotImplementedError

    async def _after_clear(self) -> None:
        """What the provider sends once it has cleared (Plivo: ``clearedAudio``)."""

    def _connected_message(self) -> dict[str, Any] | None:
        return None

    def _server_message(self, message: dict[str, Any]) -> ServerMessage | None:
        """The meaning of one server message (None, with a protocol error recorded, when wrong):
        by default Twilio's shape, ``media`` (``media.payload``), ``mark`` (``mark.name``), ``clear``."""
        event = message.get("event")
        if event == "media":
            return self.media_payload(message)
        if event == "mark":
            return self.mark_name(message)
        if event == "clear":
            return "clear", None
        self.protocol_errors.append(f"unknown event {event!r}")
        return None

    # -- the stream ----------------------------------------------------------------------------------

    def next_sequence(self) -> str:
        self._sequence += 1
        return str(self._sequence)

    async def open_stream(self, url: str, parameters: dict[str, str]) -> None:
        """Open the media socket and send what the provider sends first."""
        self._socket = await connect(url, max_size=None)
        self.line.start()
        self._reader = asyncio.create_task(self._read(), name="emulated-call-read")
        connected = self._connected_message()
        if connected is not None:
            await self.send(connected)
        await self.send(self._start_message(parameters))

    async def send(self, message: dict[str, Any] | str) -> None:
        """Send one message as it is (a dict as JSON): for malformed-input tests too."""
        assert self._socket is not None, "dial() first"
        await self._socket.send(message if isinstance(message, str) else json.dumps(message))

    async def send_audio(self, pcm: bytes, sample_rate: int, *, realtime: bool = True) -> None:
        """The caller speaks: ``pcm`` (mono PCM16) as ``media_ms`` media messages, at real time."""
        line = self._converter.convert(pcm, sample_rate, 1) + self._converter.flush()  # the whole clip
        coded = self._encode(line)
        loop = asyncio.get_running_loop()
        deadline = loop.time()
        for start in range(0, len(coded), self._frame_bytes):
            payload = base64.b64encode(coded[start : start + self._frame_bytes]).decode("ascii")
            self._chunk += 1
            await self.send(self._media_message(payload, self._chunk, self._media_ms))
            self._media_ms += self.media_ms
            if realtime:
                deadline += self.media_ms / 1000
                await asyncio.sleep(max(0.0, deadline - loop.time()))

    async def send_silence(self, seconds: float) -> None:
        rate = self.line.pcm_rate
        await self.send_audio(bytes(int(seconds * rate) * 2), rate)

    async def press(self, digit: str) -> None:
        await self.send(self._dtmf_message(digit))

    async def hang_up(self) -> None:
        """The caller hangs up: ``stop`` (where the provider sends one), then the socket closes."""
        stop = self._stop_message()
        if stop is not None:
            await self.send(stop)
        await self.close()

    async def end_from_api(self) -> None:
        """The provider ends the call because its API was told to: ``stop`` and close."""
        self.hung_up_by_server.set()
        stop = self._stop_message()
        try:
            if stop is not None:
                await self.send(stop)
        except ConnectionClosed:
            pass
        if self._socket is not None:
            await self._socket.close()

    async def close(self) -> None:
        if self._socket is not None:
            await self._socket.close()
        if self._reader is not None:
            await asyncio.gather(self._reader, return_exceptions=True)
        await self.line.stop()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    # -- waiting -------------------------------------------------------------------------------------

    async def wait_for_played(self, seconds: float, timeout: float = 30.0, *, voiced: bool = True) -> None:
        """Until ``seconds`` of bot audio (louder than silence when ``voiced``) have played."""

        def done() -> bool:
            played = self.line.voiced_secs() if voiced else len(self.line.played) / (2 * self.line.pcm_rate)
            return played >= seconds

        await self.line.wait_until(done, timeout)

    async def wait_for_quiet_line(self, timeout: float = 30.0) -> None:
        """Until everything sent has played and every mark has come back."""
        await self.line.wait_until(
            lambda: self.line.buffered_secs == 0 and not self.line.pending_marks, timeout
        )

    # -- the server's messages -----------------------------------------------------------------------

    async def _ack_mark(self, name: str) -> None:
        try:
            await self.send(self._mark_message(name))
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
            self.protocol_errors.append("a binary message (the provider takes JSON text)")
            return
        try:
            message = json.loads(data)
        except json.JSONDecodeError:
            self.protocol_errors.append(f"not JSON: {data[:80]!r}")
            return
        if not isinstance(message, dict):
            self.protocol_errors.append(f"not a JSON object: {data[:80]!r}")
            return
        meaning = self._server_message(message)
        if meaning is None:
            return
        kind, value = meaning
        if kind == "media":
            self.line.receive_audio(value)
        elif kind == "mark":
            await self.line.receive_mark(value)
        elif kind == "clear":
            await self.line.receive_clear()
            await self._after_clear()

    def media_payload(self, message: dict[str, Any]) -> ServerMessage | None:
        """``media.payload`` as audio (the shape Twilio and Telnyx share)."""
        try:
            return "media", base64.b64decode(message["media"]["payload"], validate=True)
        except (KeyError, TypeError, binascii.Error) as exc:
            self.protocol_errors.append(f"bad media message: {exc!r}")
            return None

    def mark_name(self, message: dict[str, Any]) -> ServerMessage | None:
        mark = message.get("mark")
        name = mark.get("name") if isinstance(mark, dict) else None
        if not isinstance(name, str):
            self.protocol_errors.append(f"mark without a name: {message!r}")
            return None
        return "mark", name


async def post_webhook(url: str, body: str | bytes, headers: Mapping[str, str]) -> httpx.Response:
    """The provider's webhook request: ``body`` as it was signed, with the provider's headers."""
    async with httpx.AsyncClient() as http:
        return await http.post(url, content=body, headers=dict(headers))


#: The Content-Type of a form-encoded webhook.
FORM = {"Content-Type": "application/x-www-form-urlencoded"}
