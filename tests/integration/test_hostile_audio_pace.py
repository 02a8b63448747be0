"""A client sending audio faster than real time to the echo bot, over the real WebSocket wire.

It once made the output's queue grow without bound (everything sent was queued to be played back
in real time), and after a ``disconnect-bot`` the session played all of it out before ending. The
input now takes at most 2 s ahead of real time, so both the queue and the end are bounded.
"""

from __future__ import annotations

import asyncio

from helpers.server import running_server, start_websocket_session
from voxloop.bots import SessionInfo, load_bot
from voxloop.bots.echo import Echo
from voxloop.frames import OutputAudioRawFrame
from voxloop.pipeline import Pipeline, PipelineTask
from voxloop.rtvi import ClientMessage, RTVIProcessor
from voxloop.server import ServerConfig
from voxloop.testing.rtvi_client import RTVIClient
from voxloop.transports import Transport

OUT_BYTES_PER_SEC = 48_000  # 24 kHz mono PCM16


async def test_audio_sent_far_faster_than_real_time_is_bounded_and_the_bot_leaves_promptly() -> None:
    loop = asyncio.get_running_loop()
    async with (
        running_server(ServerConfig(bot=load_bot("echo"))) as (base, app),
        RTVIClient(await start_websocket_session(base)) as client,
    ):
        await client.ready()
        started = loop.time()
        await client.stream_audio(bytes(range(256)) * 1250 * 30, realtime=False)  # 30 s at once
        error = await client.wait_for("error", predicate=lambda m: "real time" in m["data"]["error"])
        assert error["data"]["fatal"] is False
        assert (await client.request("still", "there"))["echo"] == "there"
        # The server read every audio frame before this request: it took them over at most this long.
        reading_secs = loop.time() - started
        await client.disconnect_bot()
        # The session ends once the bounded echo has played, not after 30 s.
        await asyncio.wait_for(app.state.sessions.empty.wait(), 6 + reading_secs)
    assert len(client.of_type("error")) == 1, "one error for the flood, not one per frame"
    # What was taken: the 2 s allowance, plus the real time that passed while it was being read.
    heard_secs = len(client.audio) / OUT_BYTES_PER_SEC
    assert 1.5 < heard_secs < 2.1 + reading_secs, (heard_secs, reading_secs)


def long_talker(transport: Transport, session: SessionInfo) -> PipelineTask:
    """The echo bot, plus a client request that queues a minute of the bot's speech at once."""
    rtvi = RTVIProcessor()

    @rtvi.event_handler("on_client_message")
    async def talk(processor: RTVIProcessor, message: ClientMessage) -> None:
        for _ in range(60):
            await processor.push_frame(
                OutputAudioRawFrame(audio=bytes(48_000), sample_rate=24_000, num_channels=1)
            )
        await processor.send_server_response(message, "talking")

    return PipelineTask(Pipeline([rtvi, transport.input(), Echo(), transport.output()]))


async def test_a_client_leaving_after_disconnect_bot_ends_the_session_at_once() -> None:
    async with running_server(ServerConfig(bot=long_talker)) as (base, app):
        async with RTVIClient(await start_websocket_session(base)) as client:
            await client.ready()
            await client.request("talk")
            await client.wait_for_audio(1)
            await client.disconnect_bot()  # the end waits behind a minute of queued speech...
        # ...but the client is gone: the session must see it and end now, not in a minute.
        await asyncio.wait_for(app.state.sessions.empty.wait(), 5)
