"""A Python RTVI client over WebRTC (aiortc) that does what the published SmallWebRTC client does.

It offers audio ``sendrecv`` (transceiver 0, the mic) and video ``sendrecv`` (1, no camera),
creates the data channel "chat", POSTs ``{sdp, type, pc_id: null, restart_pc: false}`` to the
offer URL, then trickles its ICE candidates with ``PATCH`` (they are left out of the offer, as a
browser that does not wait for gathering does). When the channel opens it sends ``trackStatus``
for receivers 0 and 1, and after ``client-ready`` a plain-text ``ping: <ms>`` every second. A
server ``renegotiate`` is answered with a new offer on the same peer connection; ``peerLeft``
closes the client. The API is :class:`~voxloop.testing.rtvi_client.RTVIClient`'s; bot audio is
kept as 48 kHz mono PCM16 (what the Opus track carries, downmixed).
"""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any, Final

import httpx
import numpy as np
from aiortc import (
    MediaStreamTrack,
    RTCConfiguration,
    RTCDataChannel,
    RTCPeerConnection,
    RTCSessionDescription,
)
from aiortc.mediastreams import MediaStreamError
from av import AudioFrame

from voxloop.audio import PCMConverter
from voxloop.pipeline import TaskSet
from voxloop.transports.serializers.base import encode_json as _encode_json
from voxloop.transports.webrtc import TRACK_RATE, AudioOutBuffer, OutputAudioTrack

from ._client_base import rtvi_message
from .rtvi_client import RTVIClient

__all__ = ["RTVIWebRTCClient"]

#: A frame of bot audio counts as sound (not silence) when its peak is above this.
VOICED_PEAK: Final = 300


class RTVIWebRTCClient(RTVIClient):
    """One RTVI session over WebRTC; use as ``async with RTVIWebRTCClient(offer_url) as client:``.

    Besides :class:`RTVIClient`'s records: ``pc_id``, ``peer_left`` (set on the server's
    ``peerLeft``), ``audio_voiced_bytes`` (bot audio in frames that are not silence) and
    ``renegotiations`` (offers answered after the first). ``camera`` is an optional video track
    sent on transceiver 1 (send ``cam_enabled=True`` with it, as the web client's trackStatus does).
    """

    def __init__(
        self,
        offer_url: str,
        *,
        version: str = "2.1.0",
        about: Any = None,
        mic_enabled: bool = True,
        cam_enabled: bool = False,
        trickle: bool = True,
        request_data: Any = None,
        camera: MediaStreamTrack | None = None,
    ) -> None:
        super().__init__(offer_url, version=version, about=about)
        self.offer_url = offer_url
        self.mic_enabled = mic_enabled
        self.cam_enabled = cam_enabled
        self.trickle = trickle
        self.request_data = request_data
        self.camera = camera
        self.pc_id: str | None = None
        self.pc: RTCPeerConnection | None = None
        self.peer_left = asyncio.Event()
        self.audio_sample_rate = TRACK_RATE
        self.audio_voiced_bytes = 0
        self.renegotiations = 0
        self._channel: RTCDataChannel | None = None
        self._channel_open = asyncio.Event()
        self._mic = AudioOutBuffer(max_secs=600)
        self._http: httpx.AsyncClient | None = None
        self._tasks = TaskSet(self)
        self._pinger: asyncio.Task[None] | None = None
        self._negotiating = asyncio.Lock()

    # -- lifecycle ------------------------------------------------------------------------------

    async def connect(self, timeout: float = 10) -> None:
        """Offer, answer, trickle, and wait until the data channel is open."""
        # trust_env=False: a loopback test must never go through a proxy set in the environment.
        self._http = httpx.AsyncClient(trust_env=False, timeout=timeout)
        await self._start_pc(restart=False)
        async with asyncio.timeout(timeout):
            await self._channel_open.wait()

    async def __aenter__(self) -> RTVIWebRTCClient:
        await self.connect()
        return self

    async def close(self) -> None:
        """Like the web client's ``disconnect()``: stop pinging and close the peer connection."""
        await self._stop_tasks()
        if self.pc is not None:
            await self.pc.close()
        if self._http is not None:
            await self._http.aclose()
            self._http = None
        await self._set_closed()

    async def vanish(self) -> None:
        """Disappear without a goodbye: pings stop and the UDP sockets close under the peer."""
        await self._stop_tasks()
        pc = self.pc
        if pc is not None:
            for transceiver in pc.getTransceivers():
                ice = transceiver.receiver.transport.transport
                for protocol in getattr(ice._connection, "_protocols", []):
                    if protocol.transport is not None:
                        protocol.transport.close()
        await self._set_closed()

    async def renegotiate(self, *, restart_pc: bool = False, timeout: float = 10) -> str:
        """A new offer with our ``pc_id``: on the same peer connection, or a new one (restart)."""
        async with asyncio.timeout(timeout):
            if restart_pc:
                old = self.pc
                await self._stop_pinger()
                self._channel_open.clear()
                await self._start_pc(restart=True)
                if old is not None:
                    await old.close()
                await self._channel_open.wait()
            else:
                await self._offer(restart=False)
        assert self.pc_id is not None
        return self.pc_id

    # -- sending --------------------------------------------------------------------------------

    async def send_raw(self, data: bytes | str) -> None:
        """Send text (or bytes) on the data channel, unchecked (for negative tests)."""
        channel = self._channel
        if channel is None or channel.readyState != "open":
            raise RuntimeError("the data channel is not open: connect() first")
        channel.send(data)

    async def send_message(self, type: str, data: Any = None, *, id: str | None = None) -> str:
        """Send any RTVI message as JSON text on "chat"; returns its id."""
        message = rtvi_message(type, data, id)
        await self.send_raw(_encode_json(message))
        return str(message["id"])

    async def send_signalling(self, message: dict[str, Any]) -> None:
        await self.send_raw(_encode_json({"type": "signalling", "message": message}))

    async def ready(self, timeout: float = 10) -> dict[str, Any]:
        message = await super().ready(timeout)
        if self._pinger is None:
            self._pinger = asyncio.create_task(self._ping(), name="rtvi-webrtc-client-ping")
        return message

    async def stream_audio(
        self,
        pcm: bytes,
        *,
        sample_rate: int = 16000,
        num_channels: int = 1,
        chunk_bytes: int = 512,
        realtime: bool = True,
    ) -> None:
        """Speak ``pcm`` into the mic track (48 kHz mono), which sends it in real time.

        With ``realtime`` this returns once the last of it has been sent; otherwise it returns at
        once and the track plays it out on its own. ``chunk_bytes`` is accepted for API parity.
        """
        frame_bytes = 2 * num_channels
        if len(pcm) % frame_bytes:
            raise ValueError(f"PCM must hold whole {num_channels}-channel 16-bit frames")
        converter = PCMConverter(TRACK_RATE)
        mic = converter.convert(pcm, sample_rate, num_channels) + converter.flush()  # the whole clip
        if not realtime:
            self._mic.write(mic)
            return
        step = TRACK_RATE * 2 // 50  # 20 ms
        lead = 3 * step  # a little ahead of the track, so it never pads a gap mid-stream
        loop = asyncio.get_running_loop()
        start = loop.time()
        self._mic.write(mic[:lead])
        for n, offset in enumerate(range(lead, len(mic), step)):
            if (delay := start + n * 0.02 - loop.time()) > 0:
                await asyncio.sleep(delay)  # pacing a real-time stream, not synchronisation
            self._mic.write(mic[offset : offset + step])
        if (delay := start + len(mic) / (2 * TRACK_RATE) - loop.time()) > 0:
            await asyncio.sleep(delay)

    # -- receiving ------------------------------------------------------------------------------

    async def wait_for_audio(self, min_bytes: int, timeout: float = 10, *, voiced: bool = False) -> int:
        """Wait for ``min_bytes`` of bot audio (only frames with sound when ``voiced``)."""

        def found() -> int | None:
            total = self.audio_voiced_bytes if voiced else len(self.audio)
            return total if total >= min_bytes else None

        return await self._wait_until(found, f"{min_bytes} bytes of {'voiced ' * voiced}bot audio", timeout)

    def _on_channel_message(self, message: str | bytes) -> None:
        if isinstance(message, bytes):
            self.protocol_errors.append(f"binary data channel message ({len(message)} bytes)")
            return
        try:
            parsed = json.loads(message)
        except ValueError:
            parsed = None
        if isinstance(parsed, dict) and parsed.get("type") == "signalling":
            self._on_signalling(parsed.get("message") or {})
        else:
            self._receive_message(message)
        self._notify()

    def _on_signalling(self, message: dict[str, Any]) -> None:
        kind = message.get("type")
        if kind == "peerLeft":
            self.peer_left.set()
            self._spawn(self.close())
        elif kind == "renegotiate":
            self._spawn(self._offer(restart=False))
        else:
            self.protocol_errors.append(f"unknown signalling message {message!r}")

    async def _read_audio(self, track: MediaStreamTrack) -> None:
        try:
            while True:
                frame = await track.recv()
                if not isinstance(frame, AudioFrame):
                    continue
                samples = frame.to_ndarray().reshape(-1, len(frame.layout.channels)).astype(np.int32)
                mono = samples.mean(axis=1).astype("<i2")
                if frame.sample_rate != TRACK_RATE:
                    self.protocol_errors.append(f"bot audio at {frame.sample_rate} Hz")
                pcm = mono.tobytes()
                self.audio += pcm
                self.audio_arrivals.append((time.monotonic(), len(pcm)))
                if mono.size and int(np.abs(mono).max()) > VOICED_PEAK:
                    self.audio_voiced_bytes += len(pcm)
                self._notify()
        except MediaStreamError:
            pass

    # -- internals ------------------------------------------------------------------------------

    async def _start_pc(self, *, restart: bool) -> None:
        pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
        self.pc = pc
        pc.addTransceiver(OutputAudioTrack(self._mic), direction="sendrecv")
        pc.addTransceiver(self.camera or "video", direction="sendrecv")
        channel = pc.createDataChannel("chat", ordered=True)
        self._channel = channel
        channel.on("open", lambda: self._on_open(channel))
        channel.on("message", self._on_channel_message)
        channel.on("close", lambda: self._notify())

        @pc.on("track")
        def on_track(track: MediaStreamTrack) -> None:
            if track.kind == "audio" and pc is self.pc:
                self._spawn(self._read_audio(track))

        @pc.on("connectionstatechange")
        def on_state() -> None:
            if pc is self.pc and pc.connectionState in ("failed", "closed"):
                self._spawn(self._set_closed())

        await self._offer(restart=restart)

    async def _offer(self, *, restart: bool) -> None:
        async with self._negotiating:
            pc, http = self.pc, self._http
            assert pc is not None and http is not None
            await pc.setLocalDescription(await pc.createOffer())
            local = pc.localDescription
            sdp, candidates = _split_candidates(local.sdp) if self.trickle else (local.sdp, [])
            body: dict[str, Any] = {"sdp": sdp, "type": "offer", "pc_id": self.pc_id, "restart_pc": restart}
            if self.request_data is not None:
                body["requestData"] = self.request_data
            reply = await http.post(self.offer_url, json=body)
            reply.raise_for_status()
            answer = reply.json()
            if set(answer) != {"sdp", "type", "pc_id"} or answer["type"] != "answer":
                self.protocol_errors.append(f"unexpected answer keys/type: {sorted(answer)}")
            if self.pc_id is not None:
                self.renegotiations += 1
            self.pc_id = answer["pc_id"]
            await pc.setRemoteDescription(RTCSessionDescription(sdp=answer["sdp"], type="answer"))
            if candidates:
                patch = {"pc_id": self.pc_id, "candidates": [*candidates, _end_of_candidates()]}
                reply = await http.patch(self.offer_url, json=patch)
                reply.raise_for_status()

    def _on_open(self, channel: RTCDataChannel) -> None:
        if channel is not self._channel:
            return
        for index, enabled in ((0, self.mic_enabled), (1, self.cam_enabled)):
            message = {"type": "trackStatus", "receiver_index": index, "enabled": enabled}
            channel.send(_encode_json({"type": "signalling", "message": message}))
        if self._ready_sent and self._pinger is None:  # after a restart, pings resume
            self._pinger = asyncio.create_task(self._ping(), name="rtvi-webrtc-client-ping")
        self._channel_open.set()

    async def _ping(self) -> None:
        while True:
            channel = self._channel
            if channel is not None and channel.readyState == "open":
                channel.send(f"ping: {int(time.time() * 1000)}")
            await asyncio.sleep(1)  # the web client's keep-alive period

    def _spawn(self, coro: Any) -> None:
        self._tasks.spawn(coro, f"rtvi-webrtc-client::{coro.__qualname__}")

    def _notify(self) -> None:
        self._spawn(self._notify_waiters())

    async def _stop_pinger(self) -> None:
        pinger, self._pinger = self._pinger, None
        if pinger is not None:
            pinger.cancel()
            await asyncio.wait({pinger})

    async def _stop_tasks(self) -> None:
        await self._stop_pinger()
        await self._tasks.cancel_and_wait()

    async def _set_closed(self) -> None:
        self.closed.set()
        await self._notify_waiters()

    def _connection(self) -> Any:
        if self.pc is None:
            raise RuntimeError("not connected: use `async with RTVIWebRTCClient(...)` or await connect()")
        return self.pc


def _split_candidates(sdp: str) -> tuple[str, list[dict[str, Any]]]:
    """The SDP without its candidates, and the first section's candidates as the client PATCHes them."""
    lines, candidates = [], []
    mline_index, mid = -1, None
    for line in sdp.splitlines():
        if line.startswith("m="):
            mline_index += 1
            mid = None
        elif line.startswith("a=mid:"):
            mid = line[len("a=mid:") :]
        if line.startswith("a=candidate:"):
            if mline_index == 0:
                candidates.append({"candidate": line[2:], "sdp_mid": mid or "0", "sdp_mline_index": 0})
            continue
        if line.startswith("a=end-of-candidates"):
            continue
        lines.append(line)
    return "\r\n".join(lines) + "\r\n", candidates


def _end_of_candidates() -> dict[str, Any]:
    return {"candidate": "", "sdp_mid": "0", "sdp_mline_index": 0}
