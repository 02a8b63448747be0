"""WebRTC transport (aiortc), wire-compatible with ``@pipecat-ai/small-webrtc-transport``.

One peer connection per session (:class:`WebRTCConnection`, created from the client's offer by
the server's signalling routes). Mic audio arrives on transceiver 0 as Opus, decoded by aiortc to
48 kHz stereo and converted by the base input to the pipeline rate. The bot's audio leaves on
transceiver 0: :meth:`write_audio` resamples to 48 kHz into a short buffer that a live track plays
20 ms at a time in real time (silence when idle); an interruption empties it at once. RTVI JSON
travels on the client's data channel "chat". Camera and screen frames come in as RGB
:class:`~voxloop.frames.UserImageRawFrame` when ``video_in_enabled``.

Needs the ``webrtc`` extra (``pip install voxloop[webrtc]``).
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from typing import Any

from aiortc import MediaStreamTrack
from aiortc.mediastreams import MediaStreamError
from av import AudioFrame, VideoFrame

from ..audio import PCMConverter
from ..frames import StartFrame, UserImageRawFrame
from ..pipeline import EventSource, TaskSet
from ._webrtc_connection import (
    AUDIO_INDEX,
    CAMERA_INDEX,
    SCREEN_INDEX,
    TRACK_RATE,
    AudioOutBuffer,
    OutputAudioTrack,
    SignallingError,
    WebRTCConnection,
)
from .base_input import BaseInputTransport
from .base_output import BaseOutputTransport
from .params import TransportParams
from .transport import Transport

__all__ = [
    "TRACK_RATE",
    "AudioOutBuffer",
    "OutputAudioTrack",
    "SignallingError",
    "WebRTCConnection",
    "WebRTCParams",
    "WebRTCTransport",
]

logger = logging.getLogger("voxloop.transports")


@dataclass
class WebRTCParams(TransportParams):
    """Transport settings plus what only WebRTC has: camera and screen frames in."""

    video_in_enabled: bool = False


class WebRTCTransport(EventSource, Transport):
    """One client on one :class:`WebRTCConnection`. Use :meth:`input` and :meth:`output`.

    Events: ``on_client_connected()`` once the pipeline runs and the peer connection is up;
    ``on_client_disconnected()`` once, when the client leaves, its pings stop for more than
    3 s, ICE fails, or the connection is closed. A ``restart_pc`` keeps the session: media and
    messages move to the new peer connection.
    """

    def __init__(self, connection: WebRTCConnection, params: TransportParams | None = None) -> None:
        super().__init__()
        self.connection = connection
        self.params = params or WebRTCParams()
        self.disconnected = asyncio.Event()
        self._started = False
        self._connected_fired = False
        self._input = _WebRTCInput(self)
        self._output = _WebRTCOutput(self)
        self._register_event_handler("on_client_connected")
        self._register_event_handler("on_client_disconnected")
        connection.add_event_handler("on_connected", self._on_connection_up)
        connection.add_event_handler("on_closed", self._on_connection_closed)

    @property
    def pc_id(self) -> str:
        return self.connection.pc_id

    def input(self) -> BaseInputTransport:
        return self._input

    def output(self) -> BaseOutputTransport:
        return self._output

    async def close(self, reason: str = "closed by the server") -> None:
        """Server-side end: the client gets ``peerLeft``, the peer connection closes, handlers finish."""
        await self.connection.close(reason)
        await self._mark_disconnected()
        await self._finish_event_handlers()

    async def _pipeline_started(self) -> None:
        self._started = True
        if self.connection.connected.is_set():
            await self._fire_connected()
        if self.connection.closed.is_set():
            await self._mark_disconnected()

    async def _on_connection_up(self, connection: WebRTCConnection) -> None:
        if self._started:
            await self._fire_connected()

    async def _on_connection_closed(self, connection: WebRTCConnection, reason: str) -> None:
        await self._mark_disconnected()

    async def _fire_connected(self) -> None:
        if not self._connected_fired and not self.disconnected.is_set():
            self._connected_fired = True
            await self._call_event_handler("on_client_connected")

    async def _mark_disconnected(self) -> None:
        if not self.disconnected.is_set():
            self.disconnected.set()
            await self._call_event_handler("on_client_disconnected")


class _WebRTCInput(BaseInputTransport):
    def __init__(self, transport: WebRTCTransport) -> None:
        super().__init__(transport.params, name="webrtc-input")
        self._transport = transport
        self._tasks = TaskSet(self)

    async def start(self, frame: StartFrame) -> None:
        self._tasks.spawn(self._read_messages(), f"{self}::messages")
        self._tasks.spawn(self._read_audio(), f"{self}::audio")
        if getattr(self.params, "video_in_enabled", False):
            for index, source in ((CAMERA_INDEX, "camera"), (SCREEN_INDEX, "screenVideo")):
                self._tasks.spawn(self._read_video(index, source), f"{self}::{source}")
        await self._transport._pipeline_started()

    async def stop(self) -> None:
        await self._tasks.cancel_and_wait()

    async def cleanup(self) -> None:
        await self.stop()
        await super().cleanup()

    async def _read_messages(self) -> None:
        connection = self._transport.connection
        while True:
            message = await connection.receive_message()
            await self.push_message(message)

    async def _read_audio(self) -> None:
        """Mic audio from transceiver 0, following the track across renegotiations and restarts."""
        connection = self._transport.connection
        track: MediaStreamTrack | None = None
        while not connection.closed.is_set():
            track = await connection.next_remote_track(AUDIO_INDEX, track)
            try:
                while True:
                    frame = await track.recv()
                    if connection.receiving[AUDIO_INDEX] and isinstance(frame, AudioFrame):
                        pcm = frame.to_ndarray().tobytes()  # packed s16: interleaved channels
                        await self.push_audio(pcm, frame.sample_rate, len(frame.layout.channels))
            except MediaStreamError:
                logger.debug("%s: mic track ended", self)

    async def _read_video(self, index: int, source: str) -> None:
        """Camera (1) or screen (2) frames as RGB; frames arriving while disabled are dropped."""
        connection = self._transport.connection
        track: MediaStreamTrack | None = None
        while not connection.closed.is_set():
            track = await connection.next_remote_track(index, track)
            if track.kind != "video":
                continue
            try:
                while True:
                    frame = await track.recv()
                    if connection.receiving[index] and isinstance(frame, VideoFrame):
                        rgb = frame.to_ndarray(format="rgb24")
                        await self.push_frame(
                            UserImageRawFrame(
                                image=rgb.tobytes(),
                                size=(frame.width, frame.height),
                                format="RGB",
                                user_id=connection.pc_id,
                            )
                        )
            except MediaStreamError:
                logger.debug("%s: %s track ended", self, source)


class _WebRTCOutput(BaseOutputTransport):
    def __init__(self, transport: WebRTCTransport) -> None:
        super().__init__(transport.params, name="webrtc-output")
        self._transport = transport
        self._to_track = PCMConverter(TRACK_RATE)

    async def write_audio(self, audio: bytes, sample_rate: int) -> None:
        pcm = self._to_track.convert(audio, sample_rate, 1)
        if pcm:
            self._transport.connection.audio_out.write(pcm)

    async def flush_audio(self) -> None:
        pcm = self._to_track.flush()
        if pcm:
            self._transport.connection.audio_out.write(pcm)

    async def send_message(self, message: Any) -> None:
        try:
            self._transport.connection.send_json(message)
        except (TypeError, ValueError) as exc:
            logger.error("%s: cannot send message %r: %s", self, message, exc)

    async def send_interruption(self) -> None:
        self._transport.connection.audio_out.clear()
        self._to_track.reset()
