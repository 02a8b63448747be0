"""The dev server over WebSocket, driven by the Python RTVI client (the web client's wire)."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import pytest
from websockets.exceptions import InvalidStatus

from helpers.bots import answering_rtvi
from helpers.paths import AUDIO
from helpers.server import running_server
from voxloop.bots import SessionInfo
from voxloop.bots.echo import Echo
from voxloop.frames import Frame, InputAudioRawFrame
from voxloop.pipeline import FrameDirection, FrameProcessor, Pipeline, PipelineTask
from voxloop.server import ServerConfig
from voxloop.testing.rtvi_client import RTVIClient, RTVIErrorResponse, load_wav


class AudioTap(FrameProcessor):
    """Keeps every byte of user audio the pipeline received."""

    def __init__(self) -> None:
        super().__init__()
        self.received = bytearray()

    async def process_frame(self, frame: Frame, direction: FrameDirection) -> None:
        if isinstance(frame, InputAudioRawFrame):
            self.received += frame.audio
        await self.push_frame(frame, direction)


class RecordingBot:
    """An echo bot that also records what it heard, per session."""

    def __init__(self) -> None:
        self.taps: list[AudioTap] = []
        self.tasks: list[PipelineTask] = []

    def __call__(self, transport: Any, session: SessionInfo) -> PipelineTask:
        rtvi = answering_rtvi()

        tap = AudioTap()
        self.taps.append(tap)
        task = PipelineTask(Pipeline([rtvi, transport.input(), tap, Echo(), transport.output()]))
        self.tasks.append(task)
        return task


async def start_session(base: str, **body: Any) -> dict[str, Any]:
    async with httpx.AsyncClient() as http:
        reply = await http.post(f"{base}/start", json={"transport": "websocket", **body})
    reply.raise_for_status()
    return dict(reply.json())


async def test_start_and_status_shapes() -> None:
    async with running_server(ServerConfig(bot=RecordingBot())) as (base, _app):
        start = await start_session(base)
        async with httpx.AsyncClient() as http:
            status = (await http.get(f"{base}/status")).json()
            webrtc = await http.post(f"{base}/start", json={"transport": "webrtc"})
            garbage = await http.post(f"{base}/start", content=b"{nope")
    assert start == {"wsUrl": base.replace("http", "ws") + "/ws"}  # exactly: the client rejects extras
    assert status["status"] == "ok" and status["sessions"] == 0
    assert webrtc.status_code == 400 and "not served" in webrtc.json()["detail"]
    assert garbage.status_code == 400


async def test_handshake_request_and_audio_round_trip(no_leaked_tasks) -> None:
    bot = RecordingBot()
    pcm, rate, channels = load_wav(AUDIO / "utt02_timer.wav")
    async with running_server(ServerConfig(bot=bot)) as (base, app):
        start = await start_session(base)
        async with RTVIClient(start["wsUrl"]) as client:
            bot_ready = await client.ready()
            assert bot_ready["data"]["version"] == "2.1.0"
            assert await client.request("ping", {"n": 1}) == {"echo": {"n": 1}}
            with pytest.raises(RTVIErrorResponse, match="asked to fail"):
                await client.request("fail")
            # In real time, as a microphone: audio over 2 s ahead of real time would be dropped.
            await client.stream_audio(pcm, sample_rate=rate, num_channels=channels)
            # 16 kHz in, 24 kHz out: the echo comes back resampled, 1.5x the bytes.
            await client.wait_for_audio(int(len(pcm) * 1.5 * 0.9), timeout=30)
            assert app.state.sessions and len(app.state.sessions) == 1
        await asyncio.wait_for(app.state.sessions.empty.wait(), 10)
    received = bytes(bot.taps[0].received)
    # The server heard exactly what was sent (the client pads its last chunk to 512 bytes).
    assert received[: len(pcm)] == pcm and not received[len(pcm) :].strip(b"\0")
    assert len(received) - len(pcm) < 512
    assert client.protocol_errors == []
    assert (
        max(
            abs(int.from_bytes(client.audio[i : i + 2], "little", signed=True))
            for i in range(0, len(client.audio), 2)
        )
        > 1000
    )  # not silence


async def test_garbage_is_answered_and_the_session_goes_on() -> None:
    async with running_server(ServerConfig(bot=RecordingBot())) as (base, _app):
        start = await start_session(base)
        async with RTVIClient(start["wsUrl"]) as client:
            await client.ready()
            await client.send_raw(b"\x00\x01 definitely not protobuf")
            await client.send_raw("a text frame")
            await client.send_message("no-such-type", {}, id="zz000001")
            await client.wait_for("error", count=2)
            await client.wait_for("error-response")
            assert await client.request("still", "alive") == {"echo": "alive"}
    errors = [m["data"]["error"] for m in client.messages if m["type"] == "error"]
    assert any("invalid frame" in e for e in errors) and any("text frames" in e for e in errors)


async def test_client_vanishing_mid_stream_ends_its_session(no_leaked_tasks) -> None:
    bot = RecordingBot()
    pcm, rate, _ = load_wav(AUDIO / "utt01_weather.wav")
    async with running_server(ServerConfig(bot=bot)) as (base, app):
        start = await start_session(base)
        client = RTVIClient(start["wsUrl"])
        await client.connect()
        await client.ready()
        streaming = asyncio.create_task(client.stream_audio(pcm, sample_rate=rate))
        await client.wait_for_audio(4800)
        streaming.cancel()
        await asyncio.gather(streaming, return_exceptions=True)
        await client.close()  # gone mid-stream, without a goodbye
        await asyncio.wait_for(app.state.sessions.empty.wait(), 10)
        assert bot.tasks[0].has_finished()


async def test_many_concurrent_sessions() -> None:
    bot = RecordingBot()
    pcm, rate, _ = load_wav(AUDIO / "utt04_lights.wav")
    second = pcm[: rate * 2]  # one second of 16-bit audio
    async with running_server(ServerConfig(bot=bot)) as (base, app):
        clients = [RTVIClient((await start_session(base))["wsUrl"]) for _ in range(20)]

        async def talk(client: RTVIClient) -> None:
            async with client:
                await client.ready()
                await client.stream_audio(second, sample_rate=rate)  # real time, 16 ms chunks
                await client.wait_for_audio(int(len(second) * 1.5 * 0.9), timeout=30)

        await asyncio.gather(*(talk(c) for c in clients))
        assert len(bot.tasks) == 20
        await asyncio.wait_for(app.state.sessions.empty.wait(), 15)
    assert all(c.protocol_errors == [] for c in clients)
    assert all(bytes(tap.received)[: len(second)] == second for tap in bot.taps)


async def test_session_limit_refuses_clearly() -> None:
    async with running_server(ServerConfig(bot=RecordingBot(), max_sessions=1)) as (base, _app):
        first = RTVIClient((await start_session(base))["wsUrl"])
        async with first:
            await first.ready()
            async with httpx.AsyncClient() as http:
                refused = await http.post(f"{base}/start", json={"transport": "websocket"})
            assert refused.status_code == 503
            second = RTVIClient(base.replace("http", "ws") + "/ws")
            async with second:
                await asyncio.wait_for(second.closed.wait(), 5)
            assert second.close_code == 1013


async def test_one_time_tokens() -> None:
    async with running_server(ServerConfig(bot=RecordingBot(), require_token=True)) as (base, _app):
        start = await start_session(base)
        assert set(start) == {"wsUrl", "token"}
        async with RTVIClient(start["wsUrl"], token=start["token"]) as client:
            await client.ready()
        for token in (start["token"], None, "forged"):  # used once already, missing, made up
            with pytest.raises(InvalidStatus) as refused:
                async with RTVIClient(start["wsUrl"], token=token):
                    pass
            assert refused.value.response.status_code == 403
