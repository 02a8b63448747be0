"""What every transport promises a bot (the ``Transport`` protocol), checked on each one for real.

Each transport has a *rig*: it runs a bot over that transport, with a real client at the other end
(WebSocket, on either wire: the dev server and the Python RTVI client; WebRTC: the dev server's
signalling and aiortc on both ends; memory: ``MemoryTransport``'s client), and yields a
:class:`Session`. A new transport (a telephony media stream, say) adds one rig to ``RIGS`` and every
test here runs on it.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
import pytest

from helpers.bots import answering_rtvi
from helpers.paths import AUDIO
from helpers.server import running_server, start_websocket_session
from helpers.telephony import phone_server
from voxloop.bots import SessionInfo
from voxloop.bots.echo import Echo
from voxloop.frames import Frame, InputAudioRawFrame
from voxloop.pipeline import FrameDirection, FrameProcessor, Pipeline, PipelineTask
from voxloop.server import ServerConfig
from voxloop.testing import MemoryTransport, load_wav
from voxloop.testing.rtvi_client import RTVIClient
from voxloop.testing.telephony import EmulatedCall
from voxloop.transports import (
    CLIENT_CONNECTED,
    CLIENT_DISCONNECTED,
    BaseInputTransport,
    BaseOutputTransport,
    Transport,
    TransportParams,
)


class AudioTap(FrameProcessor):
    """Counts the user audio the pipeline received."""

    def __init__(self) -> None:
        super().__init__()
        self.received = 0
        self.peak = 0

    async def process_frame(self, frame: Frame, direction: FrameDirection) -> None:
        if isinstance(frame, InputAudioRawFrame):
            self.received += len(frame.audio)
            samples = np.frombuffer(frame.audio, dtype="<i2").astype(np.int32)
            self.peak = max(self.peak, int(np.abs(samples).max(initial=0)))
        await self.push_frame(frame, direction)


@dataclass
class EchoBot:
    """An echo bot that keeps its transport, its task and what its transport's events said."""

    transport: Transport | None = None
    task: PipelineTask | None = None
    tap: AudioTap = field(default_factory=AudioTap)
    connected: asyncio.Event = field(default_factory=asyncio.Event)
    disconnected: asyncio.Event = field(default_factory=asyncio.Event)
    events: list[str] = field(default_factory=list)

    def __call__(self, transport: Transport, session: SessionInfo) -> PipelineTask:
        self.transport = transport

        @transport.event_handler(CLIENT_CONNECTED)
        def connected(t: Transport) -> None:
            self.events.append(CLIENT_CONNECTED)
            self.connected.set()

        @transport.event_handler(CLIENT_DISCONNECTED)
        def disconnected(t: Transport) -> None:
            self.events.append(CLIENT_DISCONNECTED)
            self.disconnected.set()

        self.task = PipelineTask(
            Pipeline([answering_rtvi(), transport.input(), self.tap, Echo(), transport.output()])
        )
        return self.task


@dataclass
class Session:
    """One running session as the tests see it."""

    bot: EchoBot
    client: Any  # RTVIClient's API: ready(), request(), stream_audio(), closed, ...
    leave: Callable[[], Awaitable[None]]  # the client goes away
    wait_for_bot_audio: Callable[[float], Awaitable[Any]]  # seconds of bot sound (not silence)
    rtvi: bool = True  # the client speaks RTVI (a phone line does not)

    @property
    def transport(self) -> Transport:
        assert self.bot.transport is not None
        return self.bot.transport


Rig = Callable[[EchoBot, pytest.MonkeyPatch], AbstractAsyncContextManager[Session]]


@asynccontextmanager
async def memory_rig(bot: EchoBot, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[Session]:
    transport = MemoryTransport()
    async with transport.run_bot(bot) as client:
        yield Session(bot, client, client.disconnect, lambda s: client.wait_for_audio(int(s * 48000)))


def websocket_rig(wire: Literal["protobuf", "json"]) -> Rig:
    @asynccontextmanager
    async def rig(bot: EchoBot, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[Session]:
        async with running_server(ServerConfig(bot=bot)) as (base, app):
            async with RTVIClient(await start_websocket_session(base), wire=wire) as client:
                yield Session(bot, client, client.close, lambda s: client.wait_for_audio(int(s * 48000)))
            await asyncio.wait_for(app.state.sessions.empty.wait(), 10)

    return rig


@asynccontextmanager
async def webrtc_rig(bot: EchoBot, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[Session]:
    import aioice.ice

    from voxloop.testing.rtvi_webrtc_client import RTVIWebRTCClient

    # aiortc offers host candidates only on non-loopback interfaces: pin them to 127.0.0.1.
    monkeypatch.setattr(aioice.ice, "get_host_addresses", lambda *_, **__: ["127.0.0.1"])
    config = ServerConfig(bot=bot, transports=("websocket", "webrtc"))
    async with running_server(config) as (base, app):
        async with RTVIWebRTCClient(f"{base}/api/offer") as client:
            yield Session(
                bot, client, client.close, lambda s: client.wait_for_audio(int(s * 96000), voiced=True)
            )
        await asyncio.wait_for(app.state.sessions.empty.wait(), 10)


class PhoneCaller:
    """A provider emulator's call, seen through the client API the tests use (a line has no RTVI)."""

    def __init__(self, call: EmulatedCall, bot: EchoBot) -> None:
        self.call = call
        self.closed = call.closed
        self._bot = bot

    async def ready(self) -> None:
        await asyncio.wait_for(self._bot.connected.wait(), 10)

    async def stream_audio(self, pcm: bytes, *, sample_rate: int, num_channels: int) -> None:
        assert num_channels == 1
        await self.call.send_audio(pcm, sample_rate)


def phone_rig(provider: str) -> Rig:
    @asynccontextmanager
    async def rig(bot: EchoBot, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[Session]:
        async with phone_server(provider, bot) as (webhook, app, cloud), cloud.call(webhook) as call:
            await call.dial()
            caller = PhoneCaller(call, bot)
            yield Session(bot, caller, call.hang_up, lambda s: call.wait_for_played(s), rtvi=False)
            await call.close()
            await asyncio.wait_for(app.state.sessions.empty.wait(), 10)

    return rig


#: Every transport, by name. A new transport adds its rig here.
RIGS: dict[str, Rig] = {
    "memory": memory_rig,
    "websocket": websocket_rig("protobuf"),
    "websocket-json": websocket_rig("json"),
    "webrtc": webrtc_rig,
    "twilio": phone_rig("twilio"),
    "telnyx": phone_rig("telnyx"),
    "plivo": phone_rig("plivo"),
    "vonage": phone_rig("vonage"),
    "exotel": phone_rig("exotel"),
}


@pytest.fixture(params=sorted(RIGS))
def open_session(
    request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch
) -> Callable[[EchoBot], AbstractAsyncContextManager[Session]]:
    rig = RIGS[request.param]
    return lambda bot: rig(bot, monkeypatch)


async def test_it_is_a_transport_with_one_input_and_one_output(open_session: Any) -> None:
    async with open_session(EchoBot()) as s:
        await s.client.ready()
        transport = s.transport
        assert isinstance(transport, Transport)
        assert isinstance(transport.input(), BaseInputTransport)
        assert isinstance(transport.output(), BaseOutputTransport)
        assert transport.input() is transport.input() and transport.output() is transport.output()
        assert isinstance(transport.params, TransportParams)
        with pytest.raises(ValueError, match="no event"):
            transport.add_event_handler("on_no_such_event", lambda t: None)


async def test_client_ready_gets_bot_ready_and_requests_are_answered(open_session: Any) -> None:
    async with open_session(EchoBot()) as s:
        if not s.rtvi:
            pytest.skip("a phone line carries no RTVI messages")
        bot_ready = await s.client.ready()
        assert bot_ready["data"]["version"] == "2.1.0"
        assert await s.client.request("ping", {"n": 1}) == {"echo": {"n": 1}}
    assert s.client.protocol_errors == []


async def test_audio_in_reaches_the_pipeline_and_bot_audio_reaches_the_client(open_session: Any) -> None:
    pcm, rate, channels = load_wav(AUDIO / "utt02_timer.wav")
    pcm = pcm[: rate * channels * 2]  # one second of speech
    bot = EchoBot()
    async with open_session(bot) as s:
        await s.client.ready()
        await s.client.stream_audio(pcm, sample_rate=rate, num_channels=channels)
        await s.wait_for_bot_audio(0.5)
    # The pipeline got the speech at its own rate (16 kHz mono), and not as silence.
    assert bot.tap.received >= 0.8 * 16000 * 2 and bot.tap.peak > 1000


async def test_connected_then_disconnected_once_when_the_client_leaves(
    open_session: Any, no_leaked_tasks: None
) -> None:
    bot = EchoBot()
    async with open_session(bot) as s:
        await s.client.ready()
        await asyncio.wait_for(bot.connected.wait(), 10)
        assert not bot.disconnected.is_set()
        await s.leave()
        await asyncio.wait_for(bot.disconnected.wait(), 10)
        assert bot.task is not None
        await asyncio.wait_for(bot.task.wait_until_finished(), 10)  # the bot's task ends with it
    assert bot.events == [CLIENT_CONNECTED, CLIENT_DISCONNECTED]


async def test_close_ends_the_session_for_both_sides(open_session: Any, no_leaked_tasks: None) -> None:
    bot = EchoBot()
    async with open_session(bot) as s:
        await s.client.ready()
        await asyncio.wait_for(bot.connected.wait(), 10)
        await s.transport.close()
        await asyncio.wait_for(bot.disconnected.wait(), 10)
        await asyncio.wait_for(s.client.closed.wait(), 10)  # the client was told
        assert bot.task is not None
        await asyncio.wait_for(bot.task.wait_until_finished(), 10)
        await s.transport.close()  # a second close is harmless
    assert bot.events == [CLIENT_CONNECTED, CLIENT_DISCONNECTED]


async def test_every_event_handler_has_finished_when_close_returns(
    open_session: Any, no_leaked_tasks: None
) -> None:
    bot = EchoBot()
    handler_started, release, handler_finished = asyncio.Event(), asyncio.Event(), asyncio.Event()
    async with open_session(bot) as s:
        await s.client.ready()
        await asyncio.wait_for(bot.connected.wait(), 10)

        @s.transport.event_handler(CLIENT_DISCONNECTED)
        async def slow_cleanup(t: Transport) -> None:
            handler_started.set()
            await release.wait()
            handler_finished.set()

        closing = asyncio.create_task(s.transport.close())
        await asyncio.wait_for(handler_started.wait(), 10)
        # While the handler is held, close() is not over (a bounded check that it stays so).
        done, _ = await asyncio.wait({closing}, timeout=0.5)
        assert not done, "close() returned while an event handler was still running"
        release.set()
        await closing
        assert handler_finished.is_set()
        await asyncio.wait_for(s.client.closed.wait(), 10)
        assert bot.task is not None
        await asyncio.wait_for(bot.task.wait_until_finished(), 10)
