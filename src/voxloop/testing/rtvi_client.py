"""A Python RTVI client that speaks the published web client's WebSocket wire, for tests and load.

It behaves like ``@pipecat-ai/client-js`` 1.13.1 over ``@pipecat-ai/websocket-transport`` 1.7.1:
every frame it sends is a binary protobuf ``pipecat.Frame`` (RTVI messages as compact JSON in a
``message`` frame, mic audio as 512-byte ``audio`` frames of 16 kHz mono PCM16), and it is exactly
as strict as that client about what comes back, so a server that passes here works in the browser.
Every server message is checked against :mod:`voxloop.rtvi.messages`; a violation is kept in
``protocol_errors`` and raised from the next wait, so a test cannot miss it.

With ``wire="json"`` it speaks voxloop's plain JSON wire instead (``/ws?wire=json``): every RTVI
message is a JSON text frame, mic audio goes as ``raw-audio`` messages and bot audio arrives as
``bot-tts-audio`` messages, so the same test can drive a bot over either wire.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import json
import re
import time
import wave
from pathlib import Path
from types import TracebackType
from typing import Any, Final, Literal
from urllib.parse import quote

# protobuf ships no type information; the types-protobuf stubs are optional.
from google.protobuf.message import DecodeError  # type: ignore[import-untyped, unused-ignore]
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from voxloop import __version__
from voxloop.rtvi.messages import validate_server_message
from voxloop.transports.serializers import BOT_AUDIO_TYPE, frames_pb2

# Like JSON.stringify: compact, non-ASCII as is; NaN has no JSON form, so refused.
from voxloop.transports.serializers.base import encode_json as _encode_json

from ._client_base import ClientBase, RTVIErrorResponse, RTVIProtocolError, rtvi_message, without_none

__all__ = ["RTVIClient", "RTVIErrorResponse", "RTVIProtocolError", "load_wav"]

_VERSION_RE: Final = re.compile(r"^(\d+)\.(\d+)\.(\d+)$")
_ABOUT: Final = {"library": "voxloop-testing", "library_version": __version__, "platform": "python"}


def load_wav(path: str | Path) -> tuple[bytes, int, int]:
    """``(pcm, sample_rate, num_channels)`` of a 16-bit PCM WAV file, ready for ``stream_audio``."""
    with wave.open(str(path), "rb") as wav:
        if wav.getsampwidth() != 2:
            raise ValueError(f"{path}: {8 * wav.getsampwidth()}-bit samples, the wire carries 16-bit PCM")
        return wav.readframes(wav.getnframes()), wav.getframerate(), wav.getnchannels()


class RTVIClient(ClientBase):
    """One RTVI session over WebSocket; use as ``async with RTVIClient(url) as client:``.

    What arrives is kept for the test to inspect: ``messages`` (every RTVI message, in order),
    ``audio`` (all bot PCM) with ``audio_arrivals`` ((monotonic time, byte count) per frame, for
    underrun and lateness analysis), ``interruptions`` (count of interruption frames),
    ``protocol_errors``, and ``closed`` / ``close_code`` once the socket is gone.

    ``wire``: ``"protobuf"`` (the web client's) or ``"json"`` (adds ``wire=json`` to the URL; bot
    audio messages fill ``audio`` and are not kept in ``messages``; no interruption frames).
    ``strict``: check server messages as voxloop's own (no unknown type or field); False accepts
    what a published client accepts from a newer server.
    """

    def __init__(
        self,
        url: str,
        *,
        token: str | None = None,
        version: str = "2.1.0",
        about: Any = None,
        wire: Literal["protobuf", "json"] = "protobuf",
        strict: bool = True,
    ) -> None:
        super().__init__()
        if wire not in ("protobuf", "json"):
            raise ValueError(f"wire must be 'protobuf' or 'json', got {wire!r}")
        if token is not None:
            url = f"{url}{'&' if '?' in url else '?'}token={quote(token, safe='')}"
        if wire == "json":
            url = f"{url}{'&' if '?' in url else '?'}wire=json"
        self.url = url
        self.wire = wire
        self.strict = strict
        self.version = version
        self.about: Any = about if about is not None else dict(_ABOUT)
        #: Per message (same index): when it arrived, and how many bytes of bot audio had arrived before it.
        self.message_arrivals: list[tuple[float, int]] = []
        self.audio_arrivals: list[tuple[float, int]] = []
        # audio_sample_rate: as labelled by the server; the web client ignores it
        self.closed = asyncio.Event()
        self.close_code: int | None = None
        self.bot_ready: dict[str, Any] | None = None
        self.bot_version: tuple[int, int, int] | None = None
        self._ws: ClientConnection | None = None
        self._reader: asyncio.Task[None] | None = None
        self._ready_sent = False

    # -- lifecycle ------------------------------------------------------------------------------

    async def connect(self) -> None:
        """Open the socket and start reading; like the browser: no pings, no size limit."""
        # proxy=None: a loopback test must never go through a proxy set in the environment.
        self._ws = await connect(self.url, ping_interval=None, max_size=None, proxy=None)
        self._reader = asyncio.create_task(self._read(self._ws), name="rtvi-client-reader")

    async def close(self) -> None:
        """Close the socket (the web client's ``disconnect()`` sends no message) and stop reading."""
        if self._ws is not None:
            await self._ws.close()
        if self._reader is not None:
            self._reader.cancel()
            try:
                await self._reader
            except asyncio.CancelledError:
                if (task := asyncio.current_task()) is not None and task.cancelling():
                    raise

    async def __aenter__(self) -> RTVIClient:
        await self.connect()
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close()

    # -- sending --------------------------------------------------------------------------------

    async def send_raw(self, data: bytes | str) -> None:
        """Send bytes as a binary frame or a str as a TEXT frame, unchecked (for negative tests)."""
        await self._connection().send(data)

    async def send_message(self, type: str, data: Any = None, *, id: str | None = None) -> str:
        """Send any RTVI message (a protobuf ``MessageFrame``, or a text frame on the JSON wire)."""
        message = rtvi_message(type, data, id)
        message_id: str = message["id"]
        if self.wire == "json":
            await self.send_raw(_encode_json(message))
            return message_id
        frame = frames_pb2.Frame()
        frame.message.data = _encode_json(message)
        await self.send_raw(frame.SerializeToString())
        return message_id

    async def ready(self, timeout: float = 10) -> dict[str, Any]:
        """Send ``client-ready`` and wait for ``bot-ready``; checked as strictly as the web client."""
        self._ready_sent = True  # the web client is "ready" once client-ready is sent
        await self.send_message("client-ready", {"version": self.version, "about": self.about})
        message = await self.wait_for("bot-ready", timeout=timeout)
        data = message.get("data")
        if not isinstance(data, dict):  # the web client throws and connect() never resolves
            raise RTVIProtocolError(f"bot-ready without a data object: {message}")
        match = _VERSION_RE.match(str(data.get("version")))
        if match is None:  # client-react parses it with semver
            raise RTVIProtocolError(f"bot-ready version is not x.y.z: {message}")
        self.bot_ready = message
        self.bot_version = (int(match[1]), int(match[2]), int(match[3]))
        return message

    async def send_text(
        self, content: str, *, run_immediately: bool | None = None, audio_response: bool | None = None
    ) -> str:
        """``sendText``: options is ``{}`` when none are given, as in the web client."""
        self._check_ready()
        options = without_none(run_immediately=run_immediately, audio_response=audio_response)
        return await self.send_message("send-text", {"content": content, "options": options})

    async def disconnect_bot(self) -> str:
        """``disconnectBot``: asks the server to end the bot; the socket stays open."""
        self._check_ready()
        return await self.send_message("disconnect-bot", {})

    async def send_function_call_result(
        self, function_name: str, tool_call_id: str, arguments: Any, result: Any
    ) -> str:
        """What the web client sends after a registered function-call handler resolves."""
        self._check_ready()
        data = {
            "function_name": function_name,
            "tool_call_id": tool_call_id,
            "arguments": arguments,
            "result": result,
        }
        return await self.send_message("llm-function-call-result", data)

    async def send_dtmf(self, buttons: str) -> None:
        """``sendDTMF``: one message for bots >= 2.1, one per key for 2.0.x, refused below 2.0."""
        self._check_ready()
        if self.bot_version is None or self.bot_version < (2, 0, 0):
            raise RuntimeError(f"DTMF needs a bot protocol >= 2.0.0, bot has {self.bot_version}")
        if self.bot_version >= (2, 1, 0):
            await self.send_message("dtmf", {"buttons": list(buttons)})
        else:
            for button in buttons:
                await self.send_message("dtmf", {"button": button})

    async def stream_audio(
        self,
        pcm: bytes,
        *,
        sample_rate: int = 16000,
        num_channels: int = 1,
        chunk_bytes: int = 512,
        realtime: bool = True,
    ) -> None:
        """Send PCM16 as mic frames of ``chunk_bytes`` (default 16 ms), like the web client.

        With ``realtime`` chunk n leaves at start + n * chunk duration (absolute deadlines, so no
        drift), as a live microphone would produce it. The last chunk is padded with silence
        because the web client only ever sends whole chunks. On the JSON wire each chunk is a
        ``raw-audio`` message instead.
        """
        frame_bytes = 2 * num_channels
        if chunk_bytes <= 0 or chunk_bytes % frame_bytes or len(pcm) % frame_bytes:
            raise ValueError(f"PCM and chunks must hold whole {num_channels}-channel 16-bit frames")
        chunk_seconds = chunk_bytes / (frame_bytes * sample_rate)
        loop = asyncio.get_running_loop()
        start = loop.time()
        for n, offset in enumerate(range(0, len(pcm), chunk_bytes)):
            if realtime and (delay := start + n * chunk_seconds - loop.time()) > 0:
                await asyncio.sleep(delay)  # pacing a real-time stream, not synchronisation
            chunk = pcm[offset : offset + chunk_bytes].ljust(chunk_bytes, b"\0")
            if self.wire == "json":
                encoded = base64.b64encode(chunk).decode("ascii")
                raw = {"base64Audio": encoded, "sampleRate": sample_rate, "numChannels": num_channels}
                await self.send_message("raw-audio", raw)
                continue
            frame = frames_pb2.Frame()
            audio = frame.audio
            audio.name = "audio"  # id 0 and no pts, as the web client sends it
            audio.audio = chunk
            audio.sample_rate = sample_rate
            audio.num_channels = num_channels
            await self.send_raw(frame.SerializeToString())

    def _closed_reason(self) -> str:
        return f"connection closed (code {self.close_code})"

    # -- receiving ------------------------------------------------------------------------------

    async def _read(self, ws: ClientConnection) -> None:
        """Owned by the client: decodes every server frame until the socket closes."""
        try:
            async for data in ws:
                self._receive(data)
                await self._notify_waiters()
        except ConnectionClosed:
            pass
        finally:
            self.close_code = ws.close_code
            self.closed.set()
            await self._notify_waiters()

    def _receive(self, data: bytes | str) -> None:
        if self.wire == "json":
            if isinstance(data, str):
                self._receive_message(data)
            else:
                self.protocol_errors.append(f"binary frame on the JSON wire ({len(data)} bytes)")
            return
        if isinstance(data, str):
            self.protocol_errors.append(
                f"TEXT frame from the server (the web client drops it): {data[:200]!r}"
            )
            return
        try:
            frame = frames_pb2.Frame.FromString(data)
        except DecodeError as exc:
            self.protocol_errors.append(f"undecodable binary frame ({len(data)} bytes): {exc}")
            return
        kind = frame.WhichOneof("frame")
        if kind == "message":
            self._receive_message(frame.message.data)
        elif kind == "audio":
            audio: bytes = frame.audio.audio
            if len(audio) % 2:  # the web client's Int16Array cannot hold half a sample
                self.protocol_errors.append(f"bot audio frame of odd length {len(audio)}")
            self.audio += audio
            self.audio_arrivals.append((time.monotonic(), len(audio)))
            self.audio_sample_rate = frame.audio.sample_rate
        elif kind == "interruption":  # the 1.7.1 client skips these; newer ones may use them
            self.interruptions += 1
        else:
            self.protocol_errors.append(f"frame of kind {kind!r} (the web client only handles audio/message)")

    def _receive_message(self, text: str) -> None:
        try:
            message = json.loads(text)
        except ValueError as exc:
            self.protocol_errors.append(f"message frame is not JSON ({exc}): {text[:200]!r}")
            return
        if not isinstance(message, dict):
            self.protocol_errors.append(f"message is not a JSON object: {text[:200]!r}")
            return
        try:
            validate_server_message(message, strict=self.strict)
        except ValueError as exc:
            self.protocol_errors.append(f"invalid {message.get('type')!r} message: {exc}")
        if self.wire == "json" and message.get("type") == BOT_AUDIO_TYPE:
            self._receive_json_audio(message)
            return
        self.messages.append(message)  # kept even when invalid, so the test can look at it
        self.message_arrivals.append((time.monotonic(), len(self.audio)))

    def _receive_json_audio(self, message: dict[str, Any]) -> None:
        data = message.get("data")
        if not isinstance(data, dict):
            return  # already reported by the validation
        try:
            audio = base64.b64decode(str(data.get("audio")), validate=True)
        except (binascii.Error, ValueError) as exc:
            self.protocol_errors.append(f"{BOT_AUDIO_TYPE} audio is not base64: {exc}")
            return
        if len(audio) % 2:
            self.protocol_errors.append(f"bot audio message of odd length {len(audio)}")
        self.audio += audio
        self.audio_arrivals.append((time.monotonic(), len(audio)))
        self.audio_sample_rate = data.get("sample_rate")

    # -- helpers --------------------------------------------------------------------------------

    def _connection(self) -> ClientConnection:
        if self._ws is None:
            raise RuntimeError("not connected: use `async with RTVIClient(...)` or await connect()")
        return self._ws

    def _check_ready(self) -> None:
        if not self._ready_sent:  # the web client throws BotNotReadyError here
            raise RuntimeError("call ready() first: the web client sends nothing before client-ready")
