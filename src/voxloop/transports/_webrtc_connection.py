"""One client's WebRTC peer connection (aiortc), as the SmallWebRTC clients expect it.

The client is the offerer: transceiver 0 is audio (mic in, bot audio out), 1 is the camera,
2 the screen. It creates the data channel "chat", over which it sends ``trackStatus`` signalling,
RTVI JSON and a plain-text ``ping: <ms>`` every second. This module owns everything below the
pipeline: the peer connection (replaced on ``restart_pc``), the data channel with its bounded
outbound queue, the bot's audio track, the keep-alive and connect watchdogs. The transport
(:mod:`voxloop.transports.webrtc`) reads and writes through it.
"""

from __future__ import annotations

import asyncio
import fractions
import json
import logging
import uuid
from collections import deque
from collections.abc import Iterable
from typing import Any, Final

from aiortc import (
    MediaStreamTrack,
    RTCConfiguration,
    RTCDataChannel,
    RTCIceServer,
    RTCPeerConnection,
    RTCRtpTransceiver,
    RTCSessionDescription,
)
from aiortc.mediastreams import MediaStreamError
from aiortc.sdp import SessionDescription, candidate_from_sdp
from av import AudioFrame

from ..pipeline import EventSource, TaskSet

logger = logging.getLogger("voxloop.transports")

#: The bot's audio track: 20 ms frames of 48 kHz mono PCM16 (Opus encodes at 48 kHz).
TRACK_RATE: Final = 48000
FRAME_SAMPLES: Final = 960
FRAME_BYTES: Final = FRAME_SAMPLES * 2
FRAME_SECS: Final = FRAME_SAMPLES / TRACK_RATE
_TIME_BASE: Final = fractions.Fraction(1, TRACK_RATE)

AUDIO_INDEX: Final = 0
CAMERA_INDEX: Final = 1
SCREEN_INDEX: Final = 2


class SignallingError(ValueError):
    """The client's offer or candidates cannot be used; the message says why (HTTP 400)."""


class AudioOutBuffer:
    """Bot audio written ahead of time, played by the track 20 ms at a time.

    Bounded: past ``max_bytes`` the oldest audio goes (that only happens when nobody plays it,
    e.g. before the peer connection is up). :meth:`clear` drops everything at once (interruption).
    """

    def __init__(self, max_secs: float = 1.0) -> None:
        self.max_bytes = int(max_secs * TRACK_RATE) * 2
        self._pcm = bytearray()

    def __len__(self) -> int:
        return len(self._pcm)

    def write(self, pcm: bytes) -> None:
        self._pcm += pcm
        if (excess := len(self._pcm) - self.max_bytes) > 0:
            excess += excess % 2
            logger.warning("webrtc: %d ms of bot audio not played in time; dropped", excess // 96)
            del self._pcm[:excess]

    def take(self, n: int) -> bytes:
        """The next ``n`` bytes, padded with silence when there are not enough."""
        chunk = bytes(self._pcm[:n])
        del self._pcm[:n]
        return chunk.ljust(n, b"\0")

    def clear(self) -> None:
        self._pcm.clear()


class OutputAudioTrack(MediaStreamTrack):
    """A live audio track that plays an :class:`AudioOutBuffer` in real time, silence when idle.

    aiortc's sender calls :meth:`recv` in a loop; each call returns the next 20 ms frame at its
    wall-clock time (absolute deadlines, so no drift). If the sender fell far behind (the loop
    was blocked), the clock restarts rather than bursting to catch up.
    """

    kind = "audio"

    def __init__(self, source: AudioOutBuffer) -> None:
        super().__init__()
        self._source = source
        self._start: float | None = None
        self._index = 0  # frames since _start
        self._pts = 0

    async def recv(self) -> AudioFrame:
        if self.readyState != "live":
            raise MediaStreamError
        loop = asyncio.get_running_loop()
        if self._start is None:
            self._start = loop.time()
        else:
            self._index += 1
            self._pts += FRAME_SAMPLES
            delay = self._start + self._index * FRAME_SECS - loop.time()
            if delay < -0.2:
                self._start, self._index = loop.time(), 0
            elif delay > 0:
                await asyncio.sleep(delay)  # real-time pacing of the media clock
        frame = AudioFrame(format="s16", layout="mono", samples=FRAME_SAMPLES)
        frame.planes[0].update(self._source.take(FRAME_BYTES))
        frame.pts = self._pts
        frame.sample_rate = TRACK_RATE
        frame.time_base = _TIME_BASE
        return frame


def _ice_servers(servers: Iterable[str | RTCIceServer | dict[str, Any]]) -> list[RTCIceServer]:
    result = []
    for server in servers:
        if isinstance(server, RTCIceServer):
            result.append(server)
        elif isinstance(server, str):
            result.append(RTCIceServer(urls=server))
        else:
            result.append(
                RTCIceServer(
                    urls=server["urls"], username=server.get("username"), credential=server.get("credential")
                )
            )
    return result


class WebRTCConnection(EventSource):
    """One client's peer connection, stable across renegotiation and ``restart_pc``.

    ``iceServers`` default to none at all: aiortc would otherwise contact a public STUN server.
    Events: ``on_connected()`` (the first time the peer connection is up), ``on_closed(reason)``
    (once: the client left, its pings stopped, ICE failed, or :meth:`close`).
    """

    def __init__(
        self,
        ice_servers: Iterable[str | RTCIceServer | dict[str, Any]] = (),
        *,
        ping_timeout_secs: float = 3.0,
        connect_timeout_secs: float = 30.0,
        max_queued_messages: int = 50,
        max_inbound_messages: int = 256,
        audio_out_buffer_secs: float = 1.0,
    ) -> None:
        super().__init__()
        self.ice_servers = _ice_servers(ice_servers)
        self.ping_timeout_secs = ping_timeout_secs
        self.connect_timeout_secs = connect_timeout_secs
        self.pc_id = ""
        self.audio_out = AudioOutBuffer(audio_out_buffer_secs)
        self.receiving = [True, False, False]  # trackStatus per receiver index
        self.connected = asyncio.Event()
        self.closed = asyncio.Event()
        self.close_reason: str | None = None
        self._pc: RTCPeerConnection | None = None
        self._channel: RTCDataChannel | None = None
        self._outbound: deque[str] = deque()
        self._max_queued = max_queued_messages
        self._inbound: asyncio.Queue[Any] = asyncio.Queue(max_inbound_messages)
        self._tracks_changed = asyncio.Condition()
        self._last_ping: float | None = None
        self.ping_seen = asyncio.Event()
        self._watchdog: asyncio.Task[None] | None = None
        self._pending_closes = TaskSet(self)  # handlers and pc closes that close() waits for
        self._answering = asyncio.Lock()  # one offer at a time
        self._register_event_handler("on_connected")
        self._register_event_handler("on_closed")

    def __repr__(self) -> str:
        return f"WebRTCConnection({self.pc_id})"

    @property
    def pc(self) -> RTCPeerConnection | None:
        return self._pc

    # -- signalling ------------------------------------------------------------------------------

    async def answer(self, sdp: str, type: str = "offer", *, restart_pc: bool = False) -> dict[str, str]:
        """Answer an offer: the first one, a renegotiation, or a restart on a new peer connection."""
        async with self._answering:
            return await self._answer(sdp, type, restart_pc)

    async def _answer(self, sdp: str, type: str, restart_pc: bool) -> dict[str, str]:
        if self.closed.is_set():
            raise SignallingError("this peer connection is closed")
        if type != "offer":
            raise SignallingError(f"expected an SDP offer, got type {type!r}")
        if not any(line.startswith("m=") for line in sdp.splitlines()):
            raise SignallingError("invalid SDP offer: it has no media sections (m= lines)")
        try:  # before a restart replaces the working peer connection
            SessionDescription.parse(sdp)
        except Exception as exc:
            raise SignallingError(f"invalid SDP offer: {exc!r}") from exc
        if self._pc is None or restart_pc:
            old, self._pc = self._pc, self._new_pc()
            self.pc_id = f"voxloop-{uuid.uuid4().hex}"
            if old is not None:
                logger.info("%r: restarting on a new peer connection", self)
                self._channel = None
                self._close_later(old)
        pc = self._pc
        try:
            await pc.setRemoteDescription(RTCSessionDescription(sdp=sdp, type="offer"))
        except Exception as exc:  # aiortc raises assorted errors on a bad SDP
            raise SignallingError(f"invalid SDP offer: {exc!r}") from exc
        transceivers = pc.getTransceivers()
        self._set_up_transceivers(transceivers)
        answer = await pc.createAnswer()
        await pc.setLocalDescription(answer)  # aiortc gathers its candidates here
        async with self._tracks_changed:
            self._tracks_changed.notify_all()
        if self._watchdog is None:
            self._watchdog = asyncio.create_task(self._watch(), name=f"{self!r}::watchdog")
        local = pc.localDescription
        return {"sdp": local.sdp, "type": local.type, "pc_id": self.pc_id}

    async def add_ice_candidates(self, candidates: Iterable[dict[str, Any]]) -> None:
        """Trickled client candidates (``{candidate, sdp_mid, sdp_mline_index}``); "" ends them."""
        pc = self._pc
        if pc is None or self.closed.is_set():
            return
        for item in candidates:
            if not isinstance(item, dict):
                raise SignallingError("each candidate must be an object")
            text = item.get("candidate")
            if not isinstance(text, str):
                raise SignallingError("candidate.candidate must be a string")
            text = text.strip().removeprefix("a=").removeprefix("candidate:")
            if not text:
                try:
                    await pc.addIceCandidate(None)  # end of candidates
                except ValueError as exc:
                    logger.debug("%r: end-of-candidates ignored: %s", self, exc)
                continue
            try:
                candidate = candidate_from_sdp(text)
            except Exception as exc:
                raise SignallingError(f"invalid ICE candidate {text!r}") from exc
            if candidate.protocol.lower() != "udp":
                continue  # the browser's TCP "active" candidates are of no use to aiortc
            mid, index = item.get("sdp_mid"), item.get("sdp_mline_index")
            if index is not None and not isinstance(index, int):
                raise SignallingError("candidate.sdp_mline_index must be an integer")
            candidate.sdpMid = None if mid is None else str(mid)
            candidate.sdpMLineIndex = index
            if candidate.sdpMid is None and candidate.sdpMLineIndex is None:
                candidate.sdpMLineIndex = 0
            try:
                await pc.addIceCandidate(candidate)
            except ValueError as exc:  # e.g. after end-of-candidates: harmless
                logger.debug("%r: candidate ignored: %s", self, exc)

    def request_renegotiation(self) -> None:
        """Ask the client for a fresh offer on the same peer connection."""
        self.send_signalling({"type": "renegotiate"})

    # -- data channel ----------------------------------------------------------------------------

    def send_json(self, message: Any) -> None:
        """Send a message on "chat"; queued (bounded) until the channel is open."""
        self._send_text(json.dumps(message, ensure_ascii=False, separators=(",", ":")))

    def send_signalling(self, message: dict[str, Any]) -> None:
        self.send_json({"type": "signalling", "message": message})

    async def receive_message(self) -> Any:
        """The next client message that is neither a ping nor signalling (RTVI, mostly)."""
        return await self._inbound.get()

    def _send_text(self, text: str) -> None:
        if self.closed.is_set():
            return
        channel = self._channel
        if channel is not None and channel.readyState == "open":
            channel.send(text)
        elif len(self._outbound) < self._max_queued:
            self._outbound.append(text)
        else:
            logger.warning(
                "%r: data channel not open and %d messages queued; dropped one", self, len(self._outbound)
            )

    def _on_datachannel(self, pc: RTCPeerConnection, channel: RTCDataChannel) -> None:
        if pc is not self._pc:
            return
        if channel.label != "chat":
            logger.info("%r: ignoring data channel %r", self, channel.label)
            return
        self._channel = channel
        channel.on("message", lambda message: self._on_channel_message(channel, message))
        channel.on("open", lambda: self._flush(channel))
        if channel.readyState == "open":
            self._flush(channel)

    def _flush(self, channel: RTCDataChannel) -> None:
        while self._outbound and channel is self._channel and channel.readyState == "open":
            channel.send(self._outbound.popleft())

    def _on_channel_message(self, channel: RTCDataChannel, message: str | bytes) -> None:
        if channel is not self._channel or self.closed.is_set():
            return
        if isinstance(message, bytes):
            try:
                message = message.decode()
            except UnicodeDecodeError:
                logger.warning("%r: binary data channel message dropped", self)
                return
        if message.startswith("ping"):
            self._last_ping = asyncio.get_running_loop().time()
            self.ping_seen.set()
            return
        try:
            parsed = json.loads(message)
        except ValueError:
            logger.warning("%r: data channel message is not JSON: %.200r", self, message)
            self.send_json(
                {
                    "label": "rtvi-ai",
                    "type": "error",
                    "data": {"error": "message is not JSON", "fatal": False},
                }
            )
            return
        if isinstance(parsed, dict) and parsed.get("type") == "signalling":
            self._on_signalling(parsed.get("message"))
            return
        try:
            self._inbound.put_nowait(parsed)
        except asyncio.QueueFull:
            logger.warning("%r: too many client messages waiting; dropped one", self)

    def _on_signalling(self, message: Any) -> None:
        if not isinstance(message, dict):
            logger.warning("%r: bad signalling message %r", self, message)
            return
        if message.get("type") == "trackStatus":
            index, enabled = message.get("receiver_index"), message.get("enabled")
            if isinstance(index, int) and 0 <= index < len(self.receiving) and isinstance(enabled, bool):
                self.receiving[index] = enabled
                logger.debug("%r: receiver %d %s", self, index, "enabled" if enabled else "disabled")
                return
        logger.warning("%r: unsupported signalling message %r", self, message)

    # -- tracks ----------------------------------------------------------------------------------

    def remote_track(self, index: int) -> MediaStreamTrack | None:
        """The client's track on transceiver ``index`` (0 mic, 1 camera, 2 screen), if any."""
        if self._pc is None:
            return None
        transceivers = self._pc.getTransceivers()
        if index >= len(transceivers):
            return None
        track = transceivers[index].receiver.track
        return track if track is not None and track.readyState == "live" else None

    async def next_remote_track(self, index: int, previous: MediaStreamTrack | None) -> MediaStreamTrack:
        """Wait until transceiver ``index`` has a live track other than ``previous``."""
        async with self._tracks_changed:
            while True:
                track = self.remote_track(index)
                if track is not None and track is not previous:
                    return track
                await self._tracks_changed.wait()

    # -- lifecycle -------------------------------------------------------------------------------

    async def close(self, reason: str = "closed by the server", *, notify_peer: bool = True) -> None:
        """Close for good: ``peerLeft`` first (so the client disconnects), then the peer connection."""
        if notify_peer and not self.closed.is_set():
            channel = self._channel
            if channel is not None and channel.readyState == "open":
                channel.send(json.dumps({"type": "signalling", "message": {"type": "peerLeft"}}))
                await self._drain(channel)
        self._mark_closed(reason)
        watchdog, self._watchdog = self._watchdog, None
        if watchdog is not None and watchdog is not asyncio.current_task():
            watchdog.cancel()
            await asyncio.wait({watchdog})
        pc, self._pc = self._pc, None
        self._channel = None
        if pc is not None:
            await pc.close()
        await self._pending_closes.wait()
        async with self._tracks_changed:
            self._tracks_changed.notify_all()
        await self._finish_event_handlers()

    async def _drain(self, channel: RTCDataChannel, timeout: float = 0.5) -> None:
        """Give the last message a moment to leave (bounded: the client may be gone)."""
        if channel.bufferedAmount == 0:
            await asyncio.sleep(0)  # one turn so the SCTP transport takes the chunk
            return
        drained = asyncio.Event()
        channel.bufferedAmountLowThreshold = 0
        channel.on("bufferedamountlow", drained.set)
        try:
            await asyncio.wait_for(drained.wait(), timeout)
        except TimeoutError:
            pass

    def _mark_closed(self, reason: str) -> None:
        if self.closed.is_set():
            return
        self.close_reason = reason
        self.closed.set()
        self._outbound.clear()
        logger.info("%r: closed (%s)", self, reason)
        # No await before this: handlers run in tasks owned by this object.
        self._pending_closes.spawn(self._call_event_handler("on_closed", reason), f"{self!r}::on_closed")

    def _new_pc(self) -> RTCPeerConnection:
        pc = RTCPeerConnection(RTCConfiguration(iceServers=list(self.ice_servers)))
        pc.on("datachannel", lambda channel: self._on_datachannel(pc, channel))
        pc.on("connectionstatechange", lambda: self._on_state(pc))
        return pc

    def _set_up_transceivers(self, transceivers: list[RTCRtpTransceiver]) -> None:
        """Bot audio on 0; 0 and 1 send and receive, the rest only receive (as the clients expect)."""
        for index, transceiver in enumerate(transceivers):
            transceiver.direction = "sendrecv" if index <= CAMERA_INDEX else "recvonly"
        if transceivers and transceivers[0].kind == "audio":
            sender = transceivers[0].sender
            if not isinstance(sender.track, OutputAudioTrack):
                sender.replaceTrack(OutputAudioTrack(self.audio_out))

    def _on_state(self, pc: RTCPeerConnection) -> None:
        if pc is not self._pc:
            return
        state = pc.connectionState
        logger.debug("%r: connection state %s", self, state)
        if state == "connected" and not self.connected.is_set():
            self.connected.set()
            self._pending_closes.spawn(self._call_event_handler("on_connected"), f"{self!r}::on_connected")
        elif state in ("failed", "closed"):
            self._mark_closed(f"peer connection {state}")
            self._close_later(pc)
            self._pc = None

    def _close_later(self, pc: RTCPeerConnection) -> None:
        self._pending_closes.spawn(pc.close(), f"{self!r}::close-pc")

    async def _watch(self) -> None:
        """Closes the connection when it never connects, or when the client's pings stop."""
        loop = asyncio.get_running_loop()
        try:
            await asyncio.wait_for(self.connected.wait(), self.connect_timeout_secs)
        except TimeoutError:
            self._mark_closed(f"not connected within {self.connect_timeout_secs} s")
            await self._shut_pc()
            return
        await self.ping_seen.wait()
        while True:
            assert self._last_ping is not None
            remaining = self._last_ping + self.ping_timeout_secs - loop.time()
            if remaining <= 0:
                break
            await asyncio.sleep(remaining)  # a timer: wake when the next ping is overdue
        self._mark_closed(f"no ping for {self.ping_timeout_secs} s")
        await self._shut_pc()

    async def _shut_pc(self) -> None:
        pc, self._pc = self._pc, None
        if pc is not None:
            await pc.close()
        async with self._tracks_changed:
            self._tracks_changed.notify_all()
