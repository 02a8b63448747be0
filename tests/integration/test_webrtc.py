"""The dev server over WebRTC (aiortc on both ends), driven by the Python SmallWebRTC-style client."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import aioice.ice
import httpx
import numpy as np
import pytest
from aiortc import VideoStreamTrack
from starlette.applications import Starlette

import helpers.server
from helpers.bots import answering_rtvi
from helpers.paths import AUDIO
from helpers.server import running_server
from voxloop.bots import SessionInfo
from voxloop.bots.echo import Echo
from voxloop.frames import Frame, InputAudioRawFrame, InputImageRawFrame
from voxloop.pipeline import FrameDirection, FrameProcessor, Pipeline, PipelineTask
from voxloop.server import ServerConfig, create_app
from voxloop.server.webrtc_routes import WebRTCSignalling, webrtc_routes
from voxloop.testing.rtvi_client import RTVIErrorResponse, load_wav
from voxloop.testing.rtvi_webrtc_client import RTVIWebRTCClient
from voxloop.transports.webrtc import WebRTCParams


class AudioTap(FrameProcessor):
    """Keeps every byte of user audio the pipeline received."""

    def __init__(self) -> None:
        super().__init__()
        self.received = bytearray()
        self.got_audio = asyncio.Event()

    async def process_frame(self, frame: Frame, direction: FrameDirection) -> None:
        if isinstance(frame, InputAudioRawFrame):
            self.received += frame.audio
            self.got_audio.set()
        await self.push_frame(frame, direction)


class ImageTap(FrameProcessor):
    """Keeps the camera images the pipeline received."""

    def __init__(self) -> None:
        super().__init__()
        self.images: list[InputImageRawFrame] = []
        self.got_one = asyncio.Event()

    async def process_frame(self, frame: Frame, direction: FrameDirection) -> None:
        if isinstance(frame, InputImageRawFrame):
            self.images.append(frame)
            self.got_one.set()
        await self.push_frame(frame, direction)


class RecordingBot:
    """An echo bot that also records what it heard, per session."""

    def __init__(self) -> None:
        self.taps: list[AudioTap] = []
        self.image_taps: list[ImageTap] = []
        self.tasks: list[PipelineTask] = []
        self.sessions: list[SessionInfo] = []
        self.connected: list[asyncio.Event] = []
        self.disconnected: list[asyncio.Event] = []

    def __call__(self, transport: Any, session: SessionInfo) -> PipelineTask:
        rtvi = answering_rtvi()

        connected, disconnected = asyncio.Event(), asyncio.Event()
        self.connected.append(connected)
        self.disconnected.append(disconnected)
        transport.add_event_handler("on_client_connected", lambda _t: connected.set())
        transport.add_event_handler("on_client_disconnected", lambda _t: disconnected.set())
        tap, images = AudioTap(), ImageTap()
        self.taps.append(tap)
        self.image_taps.append(images)
        self.sessions.append(session)
        task = PipelineTask(Pipeline([rtvi, transport.input(), tap, images, Echo(), transport.output()]))
        self.tasks.append(task)
        return task


@pytest.fixture(autouse=True)
def loopback_ice(monkeypatch: pytest.MonkeyPatch) -> None:
    """aiortc offers host candidates only on non-loopback interfaces: pin them to 127.0.0.1."""
    monkeypatch.setattr(aioice.ice, "get_host_addresses", lambda *_, **__: ["127.0.0.1"])


@pytest.fixture
def signalling_box(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[WebRTCSignalling]]:
    """Makes running_server's app serve the WebRTC routes; yields the signalling it made."""
    made: list[WebRTCSignalling] = []

    def create_app_with_webrtc(config: ServerConfig) -> Starlette:
        app = create_app(config)
        signalling = WebRTCSignalling(config, app.state.sessions)
        app.router.routes.extend(webrtc_routes(config, app.state.sessions, signalling))
        app.state.webrtc = signalling
        made.append(signalling)
        return app

    monkeypatch.setattr(helpers.server, "create_app", create_app_with_webrtc)
    yield made


async def _all_gone(app: Any, timeout: float = 10) -> None:
    await asyncio.wait_for(app.state.sessions.empty.wait(), timeout)
    await asyncio.wait_for(app.state.webrtc.empty.wait(), timeout)
    assert len(app.state.sessions) == 0 and len(app.state.webrtc) == 0


async def test_handshake_and_request(signalling_box: Any, no_leaked_tasks: None) -> None:
    bot = RecordingBot()
    async with running_server(ServerConfig(bot=bot)) as (base, app):
        async with RTVIWebRTCClient(f"{base}/api/offer") as client:
            bot_ready = await client.ready()
            assert bot_ready["data"]["version"] == "2.1.0"
            assert await client.request("ping", {"n": 1}) == {"echo": {"n": 1}}
            with pytest.raises(RTVIErrorResponse, match="asked to fail"):
                await client.request("fail")
            assert len(app.state.sessions) == 1 and len(app.state.webrtc) == 1
            assert app.state.webrtc.connection(client.pc_id) is not None
            await asyncio.wait_for(bot.connected[0].wait(), 5)
            async with httpx.AsyncClient(trust_env=False) as http:
                url, pc_id = f"{base}/api/offer", client.pc_id
                bad = await http.patch(
                    url, json={"pc_id": pc_id, "candidates": [{"candidate": "candidate:x"}]}
                )
                not_list = await http.patch(url, json={"pc_id": pc_id, "candidates": "x"})
            assert bad.status_code == 400 and "invalid ICE candidate" in bad.json()["detail"]
            assert not_list.status_code == 400
            assert await client.request("after", "bad patches") == {"echo": "bad patches"}
            assert not bot.disconnected[0].is_set()
        await _all_gone(app)
        assert bot.disconnected[0].is_set()
    assert client.protocol_errors == []


def _envelope(pcm: bytes, rate: int, ms: int = 20) -> np.ndarray:
    samples = np.frombuffer(pcm, dtype="<i2").astype(np.float64)
    step = rate * ms // 1000
    n = len(samples) // step
    envelope: np.ndarray = np.sqrt((samples[: n * step].reshape(n, step) ** 2).mean(axis=1))
    return envelope


def _best_correlation(sent: np.ndarray, heard: np.ndarray, max_lag: int = 50) -> float:
    """Pearson correlation of two energy envelopes at the best lag (heard lags behind sent)."""
    best = -1.0
    for lag in range(max_lag):
        a, b = sent, heard[lag : lag + len(sent)]
        n = min(len(a), len(b))
        if n < 20:
            break
        best = max(best, float(np.corrcoef(a[:n], b[:n])[0, 1]))
    return best


async def test_mic_audio_reaches_the_bot_and_bot_audio_comes_back(
    signalling_box: Any, no_leaked_tasks: None
) -> None:
    bot = RecordingBot()
    pcm, rate, channels = load_wav(AUDIO / "utt02_timer.wav")
    async with running_server(ServerConfig(bot=bot)) as (base, app):
        async with RTVIWebRTCClient(f"{base}/api/offer") as client:
            await client.ready()
            await client.stream_audio(pcm, sample_rate=rate, num_channels=channels)
            # The echo comes back as sound (48 kHz mono in the client): at least half of it.
            seconds = len(pcm) / (2 * channels * rate)
            await client.wait_for_audio(int(seconds * 0.5 * 48000 * 2), timeout=20, voiced=True)
        await _all_gone(app)
    heard = bytes(bot.taps[0].received)  # 16 kHz mono, the pipeline's input rate
    sent_env, heard_env = _envelope(pcm, rate), _envelope(heard, 16000)
    assert len(heard) >= len(pcm) * 0.9
    # Opus is lossy and the mic starts with silence: compare the energy envelopes, not samples.
    assert _best_correlation(sent_env, heard_env) > 0.8
    assert client.audio_voiced_bytes > 0 and client.protocol_errors == []


async def test_bad_requests_get_clear_errors(signalling_box: Any, no_leaked_tasks: None) -> None:
    async with running_server(ServerConfig(bot=RecordingBot())) as (base, app):
        async with httpx.AsyncClient(trust_env=False) as http:
            unknown = await http.patch(
                f"{base}/api/offer", json={"pc_id": "nope", "candidates": [{"candidate": ""}]}
            )
            bad_sdp = await http.post(
                f"{base}/api/offer", json={"sdp": "v=0\r\nthis is no sdp", "type": "offer", "pc_id": None}
            )
            bad_json = await http.post(f"{base}/api/offer", content=b"{not json")
            garbage_sdp = await http.post(
                f"{base}/api/offer", json={"sdp": "v=0\r\nm=audio x y\r\n", "type": "offer"}
            )
            no_sdp = await http.post(f"{base}/api/offer", json={"type": "offer"})
            unknown_session = await http.post(
                f"{base}/sessions/nosuch/api/offer", json={"sdp": "v=0", "type": "offer"}
            )
        assert unknown.status_code == 404 and "unknown pc_id" in unknown.json()["detail"]
        assert bad_sdp.status_code == 400 and "invalid SDP" in bad_sdp.json()["detail"]
        assert garbage_sdp.status_code == 400 and "invalid SDP" in garbage_sdp.json()["detail"]
        assert bad_json.status_code == 400 and "not JSON" in bad_json.json()["detail"]
        assert no_sdp.status_code == 400 and "sdp" in no_sdp.json()["detail"]
        assert unknown_session.status_code == 404
        assert len(app.state.sessions) == 0 and len(app.state.webrtc) == 0


async def test_disconnect_ends_the_session_and_frees_everything(
    signalling_box: Any, no_leaked_tasks: None
) -> None:
    bot = RecordingBot()
    async with running_server(ServerConfig(bot=bot)) as (base, app):
        clients = [RTVIWebRTCClient(f"{base}/api/offer") for _ in range(3)]
        for client in clients:
            await client.connect()
            await client.ready()
        assert len(app.state.sessions) == 3 and len(app.state.webrtc) == 3
        for client in clients:
            await client.close()
        await _all_gone(app)
        assert all(task.has_finished() for task in bot.tasks)


async def test_a_client_that_vanishes_is_dropped_when_its_pings_stop(
    signalling_box: Any, no_leaked_tasks: None
) -> None:
    bot = RecordingBot()
    async with running_server(ServerConfig(bot=bot)) as (base, app):
        client = RTVIWebRTCClient(f"{base}/api/offer")
        await client.connect()
        await client.ready()
        connection = app.state.webrtc.connection(client.pc_id)
        await asyncio.wait_for(connection.ping_seen.wait(), 5)  # the watchdog runs from the first ping
        await client.vanish()  # no goodbye: the server only notices that pings stopped
        await _all_gone(app, timeout=10)
        assert connection.close_reason is not None and "ping" in connection.close_reason
        assert bot.tasks[0].has_finished()
        await client.close()


async def test_the_server_ending_the_session_sends_peer_left(
    signalling_box: Any, no_leaked_tasks: None
) -> None:
    async with running_server(ServerConfig(bot=RecordingBot())) as (base, app):
        async with RTVIWebRTCClient(f"{base}/api/offer") as client:
            await client.ready()
            await client.disconnect_bot()
            await asyncio.wait_for(client.peer_left.wait(), 10)
        await _all_gone(app)


async def test_renegotiation_answers_on_the_same_peer_connection(
    signalling_box: Any, no_leaked_tasks: None
) -> None:
    bot = RecordingBot()
    async with running_server(ServerConfig(bot=bot)) as (base, app):
        async with RTVIWebRTCClient(f"{base}/api/offer") as client:
            await client.ready()
            first = client.pc_id
            connection = app.state.webrtc.connection(first)
            pc = connection.pc
            assert await client.renegotiate() == first
            assert connection.pc is pc and client.renegotiations == 1
            assert await client.request("after", "renegotiation") == {"echo": "renegotiation"}
            # The server can ask for it too: the client answers with a new offer.
            connection.request_renegotiation()
            await client._wait_until(lambda: client.renegotiations == 2 or None, "renegotiation", 10)
            assert await client.request("still", 1) == {"echo": 1}
            assert len(app.state.sessions) == 1 and len(bot.tasks) == 1
        await _all_gone(app)


async def test_restart_pc_moves_the_session_to_a_new_peer_connection(
    signalling_box: Any, no_leaked_tasks: None
) -> None:
    bot = RecordingBot()
    async with running_server(ServerConfig(bot=bot)) as (base, app):
        async with RTVIWebRTCClient(f"{base}/api/offer") as client:
            await client.ready()
            first = client.pc_id
            connection = app.state.webrtc.connection(first)
            second = await client.renegotiate(restart_pc=True)
            assert second != first
            assert app.state.webrtc.connection(second) is connection
            assert app.state.webrtc.connection(first) is None
            assert await client.request("after", "restart") == {"echo": "restart"}
            # Media moved too: mic audio on the new peer connection comes back as bot audio.
            before = client.audio_voiced_bytes
            pcm, rate, _ = load_wav(AUDIO / "utt04_lights.wav")
            await client.stream_audio(pcm[: rate * 2], sample_rate=rate)  # one second
            await client.wait_for_audio(before + 48000 * 2 // 4, voiced=True, timeout=10)
            assert len(app.state.sessions) == 1 and len(bot.tasks) == 1
        await _all_gone(app)


async def test_start_reply_and_session_offer_url(signalling_box: Any, no_leaked_tasks: None) -> None:
    bot = RecordingBot()
    async with running_server(ServerConfig(bot=bot)) as (base, app):
        start = app.state.webrtc.start_reply({"transport": "webrtc", "body": {"user": "ada"}})
        assert set(start) == {"sessionId", "iceConfig"} and start["iceConfig"] == {"iceServers": []}
        url = f"{base}/sessions/{start['sessionId']}/api/offer"
        async with RTVIWebRTCClient(url) as client:
            await client.ready()
            assert await client.request("hi", 1) == {"echo": 1}
        await _all_gone(app)
    assert bot.sessions[0].session_id == start["sessionId"]
    assert bot.sessions[0].body == {"user": "ada"} and bot.sessions[0].transport == "webrtc"


async def test_camera_frames_arrive_as_rgb_images_when_enabled(
    signalling_box: Any, no_leaked_tasks: None
) -> None:
    bot = RecordingBot()
    config = ServerConfig(bot=bot, transport_params=WebRTCParams(video_in_enabled=True))
    async with running_server(config) as (base, app):
        camera = VideoStreamTrack()  # aiortc's test pattern: 640x480, 30 fps
        async with RTVIWebRTCClient(f"{base}/api/offer", camera=camera, cam_enabled=True) as client:
            await client.ready()
            await asyncio.wait_for(bot.image_taps[0].got_one.wait(), 10)
        camera.stop()
        await _all_gone(app)
    image = bot.image_taps[0].images[0]
    assert image.format == "RGB" and image.size == (640, 480) and len(image.image) == 640 * 480 * 3


async def test_session_limit_and_shutdown(signalling_box: Any, no_leaked_tasks: None) -> None:
    bot = RecordingBot()
    async with running_server(ServerConfig(bot=bot, max_sessions=1)) as (base, app):
        async with RTVIWebRTCClient(f"{base}/api/offer") as client:
            await client.ready()
            refused = RTVIWebRTCClient(f"{base}/api/offer")
            with pytest.raises(httpx.HTTPStatusError) as full:
                await refused.connect()
            await refused.close()
            assert full.value.response.status_code == 503 and "full" in full.value.response.json()["detail"]
            await app.state.webrtc.close()  # what a server shutdown does
            await asyncio.wait_for(client.peer_left.wait(), 10)
            await _all_gone(app)
        assert len(bot.tasks) == 1 and bot.tasks[0].has_finished()


async def test_concurrent_sessions_hear_their_own_audio(signalling_box: Any, no_leaked_tasks: None) -> None:
    bot = RecordingBot()
    names = ["utt01_weather.wav", "utt03_order.wav", "utt04_lights.wav", "utt05_joke.wav"]
    wavs = [load_wav(AUDIO / name) for name in names]
    async with running_server(ServerConfig(bot=bot)) as (base, app):

        async def talk(pcm: bytes, rate: int) -> RTVIWebRTCClient:
            async with RTVIWebRTCClient(f"{base}/api/offer") as client:
                await client.ready()
                await client.stream_audio(pcm[: rate * 2 * 2], sample_rate=rate)  # two seconds
                await client.wait_for_audio(48000 * 2 // 2, voiced=True, timeout=20)
            return client

        clients = await asyncio.gather(*(talk(pcm, rate) for pcm, rate, _ in wavs))
        await _all_gone(app)
    assert all(c.protocol_errors == [] for c in clients)
    by_session = {c.pc_id: c for c in clients}
    assert len(by_session) == 4 and len(bot.taps) == 4
    # Each session's tap matches the audio its own client sent, better than any other client's.
    for tap in bot.taps:
        heard = _envelope(bytes(tap.received), 16000)
        scores = [_best_correlation(_envelope(pcm[: rate * 4], rate), heard) for pcm, rate, _ in wavs]
        assert max(scores) > 0.8 and sorted(scores)[-2] < max(scores)


async def test_track_status_turns_the_mic_off_and_on(signalling_box: Any) -> None:
    bot = RecordingBot()
    pcm, rate, _ = load_wav(AUDIO / "utt04_lights.wav")
    async with running_server(ServerConfig(bot=bot)) as (base, app):
        async with RTVIWebRTCClient(f"{base}/api/offer", mic_enabled=False) as client:
            await client.ready()
            await client.stream_audio(pcm[:rate], sample_rate=rate)  # half a second, mic "off"
            assert await client.request("sync", 1) == {"echo": 1}
            assert len(bot.taps[0].received) == 0
            await client.send_signalling({"type": "trackStatus", "receiver_index": 0, "enabled": True})
            await asyncio.wait_for(bot.taps[0].got_audio.wait(), 5)
        await _all_gone(app)
