"""WebSocket transport, wire-compatible with ``@pipecat-ai/websocket-transport``.

Each connection speaks one wire, named by the ``wire`` query parameter of its URL (see
:mod:`.serializers`). The default, ``protobuf``, is the published web client's: every message
either way is one binary protobuf ``pipecat.Frame`` (microphone audio in, bot audio out at 24 kHz
mono by default, which is what the published player plays, RTVI JSON inside message frames, an
interruption frame on barge-in). ``?wire=json`` is plain RTVI JSON in text frames, audio included.
Works on any ASGI WebSocket (Starlette's here). Bad input (a frame of the other wire's kind, data
that is not a frame, invalid JSON, an oversized message) gets an RTVI ``error`` back in the
connection's wire and a log line, once per kind of problem and then at most every 10 s with a
count of the frames dropped meanwhile (so a flood of bad frames is not answered by a flood of
errors); the session goes on.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from starlette.websockets import WebSocket, WebSocketDisconnect, WebSocketState

from ..frames import (
    InputAudioRawFrame,
    InputTransportMessageFrame,
    InterruptionFrame,
    OutputAudioRawFrame,
    OutputTransportMessageUrgentFrame,
    StartFrame,
)
from ..pipeline import EventSource
from ._throttle import ReportThrottle
from .base_input import BaseInputTransport
from .base_output import BaseOutputTransport
from .params import TransportParams
from .serializers import FrameSerializer, SerializationError, serializer_for_wire
from .transport import Transport

logger = logging.getLogger("voxloop.transports")


class WebSocketTransport(EventSource, Transport):
    """One client on one accepted WebSocket. Use :meth:`input` and :meth:`output` in the pipeline.

    Without a ``serializer``, the wire is the one the URL's ``wire`` query parameter names
    (protobuf when absent); an unknown name raises ValueError.

    Events: ``on_client_connected()``, ``on_client_disconnected()``.
    """

    def __init__(
        self,
        websocket: WebSocket,
        params: TransportParams | None = None,
        serializer: FrameSerializer | None = None,
    ) -> None:
        super().__init__()
        self.websocket = websocket
        self.params = params or TransportParams()
        self.serializer = serializer or serializer_for_wire(websocket.query_params.get("wire"))
        self.disconnected = asyncio.Event()
        self._send_lock = asyncio.Lock()
        self._input = _WebSocketInput(self)
        self._output = _WebSocketOutput(self)
        self._register_event_handler("on_client_connected")
        self._register_event_handler("on_client_disconnected")

    def input(self) -> BaseInputTransport:
        return self._input

    def output(self) -> BaseOutputTransport:
        return self._output

    async def send_data(self, data: bytes | str) -> None:
        """Send one wire message (bytes: binary, str: text); after the client left, dropped quietly."""
        if self.disconnected.is_set():
            return
        try:
            async with self._send_lock:
                if isinstance(data, str):
                    await self.websocket.send_text(data)
                else:
                    await self.websocket.send_bytes(data)
        except (WebSocketDisconnect, RuntimeError, OSError) as exc:
            logger.debug("websocket send failed (%s); the client is gone", exc)
            await self._mark_disconnected()

    async def send_error(self, text: str) -> None:
        """Answer bad input with an RTVI error, in the connection's wire."""
        message = {"label": "rtvi-ai", "type": "error", "data": {"error": text, "fatal": False}}
        data = self.serializer.serialize(OutputTransportMessageUrgentFrame(message=message))
        if data is not None:
            await self.send_data(data)

    async def close(self) -> None:
        """Close the socket (if still open) and finish the event handlers it started."""
        if self.websocket.client_state is WebSocketState.CONNECTED:
            try:
                await self.websocket.close()
            except (WebSocketDisconnect, RuntimeError, OSError):
                pass  # the client left first: nothing to close
        await self._mark_disconnected()
        await self._finish_event_handlers()

    async def _mark_disconnected(self) -> None:
        if not self.disconnected.is_set():
            self.disconnected.set()
            await self._call_event_handler("on_client_disconnected")


class _WebSocketInput(BaseInputTransport):
    def __init__(self, transport: WebSocketTransport) -> None:
        super().__init__(transport.params, name="websocket-input")
        self._transport = transport
        self._reader: asyncio.Task[None] | None = None
        self._bad_frame_reports = ReportThrottle()  # per kind of bad frame

    async def start(self, frame: StartFrame) -> None:
        self._reader = asyncio.create_task(self._read(), name=f"{self}::read")
        await self._transport._call_event_handler("on_client_connected")

    async def stop(self) -> None:
        reader, self._reader = self._reader, None
        if reader is not None and reader is not asyncio.current_task():
            reader.cancel()
            await asyncio.wait({reader})

    async def cleanup(self) -> None:
        await self.stop()
        await super().cleanup()

    async def _read(self) -> None:
        transport = self._transport
        websocket = transport.websocket
        try:
            while True:
                message = await websocket.receive()
                if message["type"] == "websocket.disconnect":
                    break
                data = message.get("bytes")
                await self._handle(message.get("text", "") if data is None else data)
        except (WebSocketDisconnect, RuntimeError, OSError) as exc:
            logger.debug("%s: connection ended: %s", self, exc)
        await transport._mark_disconnected()

    async def _handle(self, data: bytes | str) -> None:
        try:
            frame = self._transport.serializer.deserialize(data)
        except SerializationError as exc:
            dropped = self._bad_frame_reports.due(exc.kind, self.clock.now_ns())
            if dropped is not None:
                also = ReportThrottle.since(dropped, "such frames")
                logger.warning("%s: dropped a bad frame: %s%s", self, exc, also)
                await self._transport.send_error(f"invalid frame: {exc}{also}")
            return
        if isinstance(frame, InputAudioRawFrame):
            await self.push_audio(frame.audio, frame.sample_rate, frame.num_channels)
        elif isinstance(frame, InputTransportMessageFrame):
            await self.push_message(frame.message)
        else:
            await self.push_frame(frame)


class _WebSocketOutput(BaseOutputTransport):
    def __init__(self, transport: WebSocketTransport) -> None:
        super().__init__(transport.params, name="websocket-output")
        self._transport = transport

    async def write_audio(self, audio: bytes, sample_rate: int) -> None:
        frame = OutputAudioRawFrame(audio=audio, sample_rate=sample_rate, num_channels=1)
        data = self._transport.serializer.serialize(frame)
        if data is not None:
            await self._transport.send_data(data)

    async def send_message(self, message: Any) -> None:
        try:
            data = self._transport.serializer.serialize(OutputTransportMessageUrgentFrame(message=message))
        except SerializationError as exc:
            logger.error("%s: cannot send message %r: %s", self, message, exc)
            return
        if data is not None:
            await self._transport.send_data(data)

    async def send_interruption(self) -> None:
        data = self._transport.serializer.serialize(InterruptionFrame())
        if data is not None:
            await self._transport.send_data(data)
