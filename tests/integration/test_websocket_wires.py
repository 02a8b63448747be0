"""Both WebSocket wires (the web client's protobuf and plain RTVI JSON) through the same bots."""

from __future__ import annotations

import asyncio
import base64
import json
from typing import Any

import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from helpers.paths import AUDIO
from helpers.server import running_server, start_websocket_session
from voxloop.bots import SessionInfo
from voxloop.bots.echo import Echo
from voxloop.bots.echo import create_bot as echo_bot
from voxloop.frames import Frame, InputAudioRawFrame
from voxloop.pipeline import FrameDirection, FrameProcessor, Pipeline, PipelineTask
from voxloop.rtvi import RTVIProcessor
from voxloop.server import ServerConfig
from voxloop.testing.rtvi_client import RTVIClient, load_wav

WIRES = ["protobuf", "json"]


class HeardBot:
    """The echo pipeline with a tap that keeps every byte of user audio the bot received."""

    def __init__(self) -> None:
        self.heard = bytearray()

    def __call__(self, transport: Any, session: SessionInfo) -> PipelineTask:
        bot = self

        class Tap(FrameProcessor):
            async def process_frame(self, frame: Frame, direction: FrameDirection) -> None:
                if isinstance(frame, InputAudioRawFrame):
                    bot.heard += frame.audio
                await self.push_frame(frame, direction)

        pipeline = Pipeline([RTVIProcessor(), transport.input(), Tap(), Echo(), transport.output()])
        return PipelineTask(pipeline)


@pytest.mark.parametrize("wire", WIRES)
async def test_the_echo_bot_over_either_wire(wire: str, no_leaked_tasks: None) -> None:
    async with running_server(ServerConfig(bot=echo_bot)) as (base, app):
        url = await start_websocket_session(base)
        async with RTVIClient(url, wire=wire) as client:
            ready = await client.ready()
            assert ready["data"]["version"] == "2.1.0"
            client_ready_id = ready["id"]
            answer = await client.request("ping", {"n": 1})
            assert answer["echo"] == {"n": 1} and isinstance(answer["session"], str)
            await client.send_text("hello")  # accepted quietly (the echo bot has no LLM)
            assert (await client.request("after", "text"))["echo"] == "text"
        await asyncio.wait_for(app.state.sessions.empty.wait(), 10)
    assert client.protocol_errors == []
    assert [m["type"] for m in client.messages if m.get("id") == client_ready_id] == ["bot-ready"]


@pytest.mark.parametrize("wire", WIRES)
async def test_audio_round_trip_over_either_wire(wire: str) -> None:
    bot = HeardBot()
    pcm, rate, channels = load_wav(AUDIO / "utt02_timer.wav")
    async with running_server(ServerConfig(bot=bot)) as (base, _app):
        url = await start_websocket_session(base)
        async with RTVIClient(url, wire=wire) as client:
            await client.ready()
            # In real time, as a microphone: audio over 2 s ahead of real time would be dropped.
            await client.stream_audio(pcm, sample_rate=rate, num_channels=channels)
            # 16 kHz in, 24 kHz out: the echo comes back resampled, 1.5x the bytes.
            await client.wait_for_audio(int(len(pcm) * 1.5 * 0.9), timeout=30)
    # The bot heard exactly what was sent (the client pads its last chunk to 512 bytes).
    assert bot.heard[: len(pcm)] == pcm and not bot.heard[len(pcm) :].strip(b"\0")
    assert client.audio_sample_rate == 24000
    loudest = max(
        abs(int.from_bytes(client.audio[i : i + 2], "little", signed=True))
        for i in range(0, len(client.audio), 2)
    )
    assert loudest > 1000  # the speech came back, not silence
    assert client.protocol_errors == []
    if wire == "json":  # bot audio came as messages, which are not kept with the others
        assert all(m["type"] != "bot-tts-audio" for m in client.messages)


async def test_the_json_wire_answers_bad_input_and_the_session_goes_on() -> None:
    async with running_server(ServerConfig(bot=echo_bot)) as (base, _app):
        url = await start_websocket_session(base)
        async with RTVIClient(url, wire="json") as client:
            await client.ready()
            await client.send_raw('{"label": "rtvi-ai", "type": "client-message", "data": {')
            await client.send_raw("[1, 2]")
            await client.send_raw(b"\x08\x01 binary")
            await client.send_raw(
                json.dumps({"label": "rtvi-ai", "type": "send-text", "data": "x" * (1 << 20)})
            )
            await client.wait_for("error", count=4)
            await client.send_message("no-such-type", {}, id="zz000001")
            not_base64 = {"base64Audio": "!!!", "sampleRate": 16000, "numChannels": 1}
            await client.send_message("raw-audio", not_base64, id="zz000002")
            await client.send_message("raw-audio", {"base64Audio": "AAA="}, id="zz000003")
            answers = {
                n: (await client.wait_for("error-response", predicate=lambda m, n=n: m.get("id") == n))[
                    "data"
                ]
                for n in ("zz000001", "zz000002", "zz000003")
            }
            assert (await client.request("still", "alive"))["echo"] == "alive"
            silence = base64.b64encode(bytes(640)).decode()
            await client.send_message(
                "raw-audio", {"base64Audio": silence, "sampleRate": 16000, "numChannels": 1}
            )
            assert (await client.request("and", "still"))["echo"] == "still"
    errors = [m["data"]["error"] for m in client.of_type("error")]
    assert "not valid JSON" in errors[0]
    assert "expected an RTVI message (a JSON object), got a JSON list" in errors[1]
    assert "binary frames are not accepted on the JSON wire" in errors[2]
    assert "over the limit of 1048576 bytes" in errors[3]
    assert answers["zz000001"] == {"error": "Unsupported type no-such-type"}
    assert "not base64" in answers["zz000002"]["error"]
    assert "sampleRate" in answers["zz000003"]["error"]
    assert client.protocol_errors == []


async def test_a_text_frame_on_the_protobuf_wire_points_to_the_json_wire() -> None:
    async with running_server(ServerConfig(bot=echo_bot)) as (base, _app):
        url = await start_websocket_session(base)
        async with RTVIClient(url) as client:
            await client.ready()
            await client.send_raw('{"label": "rtvi-ai", "type": "client-ready"}')
            error = await client.wait_for("error")
            assert (await client.request("still", "alive"))["echo"] == "alive"
    assert "?wire=json" in error["data"]["error"]


async def test_an_unknown_wire_is_refused_with_its_reason() -> None:
    async with running_server(ServerConfig(bot=echo_bot)) as (base, app):
        url = await start_websocket_session(base)
        async with connect(f"{url}?wire=xml", proxy=None) as ws, asyncio.timeout(10):
            with pytest.raises(ConnectionClosed) as closed:
                await ws.recv()
        assert len(app.state.sessions) == 0
    assert closed.value.rcvd is not None
    assert closed.value.rcvd.code == 1008
    assert "unknown wire 'xml': use one of json, protobuf" in closed.value.rcvd.reason
