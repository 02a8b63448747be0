"""The Python RTVI client against a fake bot: the web client's exact bytes, handshake, strictness, close."""

from __future__ import annotations

import asyncio
import base64
import collections
import json
import re
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
from websockets.asyncio.server import Server, ServerConnection, serve

from helpers.paths import AUDIO
from voxloop import __version__
from voxloop import frames as f
from voxloop.testing.rtvi_client import RTVIClient, RTVIErrorResponse, RTVIProtocolError, load_wav
from voxloop.transports.serializers import ProtobufFrameSerializer
from voxloop.transports.serializers import frames_pb2 as pb

Reply = Callable[[dict[str, Any]], list[bytes | str]]


def message_frame(message: dict[str, Any]) -> bytes:
    frame = pb.Frame()
    frame.message.data = json.dumps(message)
    return frame.SerializeToString()


def audio_frame(pcm: bytes, sample_rate: int = 24000) -> bytes:
    frame = pb.Frame()
    frame.audio.audio, frame.audio.sample_rate, frame.audio.num_channels = pcm, sample_rate, 1
    return frame.SerializeToString()


def bot_ready(data: Any = None, id: str | None = None) -> bytes:
    message: dict[str, Any] = {"label": "rtvi-ai", "type": "bot-ready"}
    if data is not None:
        message["data"] = data
    if id is not None:
        message["id"] = id
    return message_frame(message)


def default_reply(message: dict[str, Any]) -> list[bytes | str]:
    """A well-behaved bot: bot-ready for client-ready, echo / fail / silence for client-message."""
    if message["type"] == "client-ready":
        return [bot_ready({"version": "2.1.0", "about": {"library": "fake", "library_version": "1"}})]
    if message["type"] == "client-message":
        t, d = message["data"]["t"], message["data"].get("d")
        base = {"label": "rtvi-ai", "id": message["id"]}
        if t == "echo":
            data = {"t": t} if d is None else {"t": t, "d": d}  # the validator wants None left out
            return [message_frame({**base, "type": "server-response", "data": data})]
        if t == "fail":
            return [message_frame({**base, "type": "error-response", "data": {"error": "no such thing"}})]
    return []


class FakeBot:
    """A WebSocket server that records what the client sends and answers through ``reply``."""

    def __init__(self) -> None:
        self.frames: list[bytes | str] = []
        self.messages: list[dict[str, Any]] = []
        self.paths: list[str] = []
        self.close_codes: list[int | None] = []
        self.disconnected = asyncio.Event()
        self.reply: Reply = default_reply
        self.connection: ServerConnection | None = None
        self._arrived = asyncio.Condition()
        self.server: Server | None = None

    @property
    def url(self) -> str:
        assert self.server is not None
        port = self.server.sockets[0].getsockname()[1]
        return f"ws://127.0.0.1:{port}/ws"

    async def handler(self, ws: ServerConnection) -> None:
        self.connection = ws
        assert ws.request is not None
        self.paths.append(ws.request.path)
        async for data in ws:
            self.frames.append(data)
            message = None
            if isinstance(data, bytes) and data[:1] == b"\x22":
                message = json.loads(pb.Frame.FromString(data).message.data)
            elif isinstance(data, str) and data.startswith("{"):  # the JSON wire
                message = json.loads(data)
            if message is not None:
                self.messages.append(message)
                for answer in self.reply(message):
                    await ws.send(answer)
            async with self._arrived:
                self._arrived.notify_all()
        self.close_codes.append(ws.close_code)
        self.disconnected.set()

    async def wait_frames(self, count: int) -> list[bytes | str]:
        async with asyncio.timeout(5), self._arrived:
            await self._arrived.wait_for(lambda: len(self.frames) >= count)
        return self.frames

    async def send(self, *frames: bytes | str) -> None:
        assert self.connection is not None
        for frame in frames:
            await self.connection.send(frame)


@pytest.fixture
async def bot(no_leaked_tasks: None) -> AsyncIterator[FakeBot]:
    fake = FakeBot()
    async with serve(fake.handler, "127.0.0.1", 0) as server:
        fake.server = server
        yield fake


def read_varint(data: bytes, pos: int) -> tuple[int, int]:
    value = shift = 0
    while True:
        byte = data[pos]
        value |= (byte & 0x7F) << shift
        pos, shift = pos + 1, shift + 7
        if not byte & 0x80:
            return value, pos


async def test_first_frame_is_the_web_clients_client_ready(bot: FakeBot) -> None:
    async with RTVIClient(bot.url) as client:
        ready = await client.ready()
    first = bot.frames[0]
    assert isinstance(first, bytes)
    assert first[0] == 0x22  # Frame field 4 (message), length-delimited
    outer, pos = read_varint(first, 1)
    assert outer == len(first) - pos
    assert first[pos] == 0x0A  # MessageFrame field 1 (data), length-delimited
    inner, pos = read_varint(first, pos + 1)
    text = first[pos:].decode()
    assert inner == len(text.encode()) and text.startswith('{"label":"rtvi-ai","type":"client-ready","data":')
    message = json.loads(text)
    assert list(message) == ["label", "type", "data", "id"]
    assert re.fullmatch(r"[0-9a-f]{8}", message["id"])
    assert text == json.dumps(message, separators=(",", ":"))  # compact, like JSON.stringify
    assert message["data"] == {
        "version": "2.1.0",
        "about": {"library": "voxloop-testing", "library_version": __version__, "platform": "python"},
    }
    assert ready["type"] == "bot-ready" and client.bot_version == (2, 1, 0) and client.bot_ready is ready


async def test_audio_frame_has_the_web_clients_exact_layout(bot: FakeBot) -> None:
    pcm = bytes(range(256)) * 2
    async with RTVIClient(bot.url) as client:
        await client.stream_audio(pcm, realtime=False)
        (frame,) = await bot.wait_frames(1)
    assert isinstance(frame, bytes) and len(frame) == 530
    assert frame[:13] == bytes.fromhex("12 8f 04 12 05 61 75 64 69 6f 1a 80 04")
    assert frame[13:525] == pcm
    assert frame[525:] == bytes.fromhex("20 80 7d 28 01")  # sample_rate 16000, num_channels 1; no id, no pts
    decoded = ProtobufFrameSerializer().deserialize(frame)
    assert isinstance(decoded, f.InputAudioRawFrame) and decoded.audio == pcm


async def test_stream_audio_sends_whole_chunks_paced_in_real_time(bot: FakeBot) -> None:
    pcm = b"\x01\x00" * (256 * 9 + 10)  # 9 whole chunks and a short tail
    loop = asyncio.get_running_loop()
    async with RTVIClient(bot.url) as client:
        started = loop.time()
        await client.stream_audio(pcm)
        elapsed = loop.time() - started
        frames = await bot.wait_frames(10)
    chunks = [pb.Frame.FromString(frame).audio.audio for frame in frames if isinstance(frame, bytes)]
    assert [len(chunk) for chunk in chunks] == [512] * 10
    assert b"".join(chunks) == pcm + bytes(512 - 20)  # the tail is padded with silence
    assert elapsed >= 9 * 0.016 - 0.002  # the tenth chunk leaves 144 ms after the first


async def test_stream_audio_refuses_partial_samples(bot: FakeBot) -> None:
    async with RTVIClient(bot.url) as client:
        with pytest.raises(ValueError):
            await client.stream_audio(b"\x00" * 3, realtime=False)
        with pytest.raises(ValueError):
            await client.stream_audio(b"\x00" * 4, chunk_bytes=510, num_channels=4, realtime=False)


async def test_token_is_appended_to_the_url(bot: FakeBot) -> None:
    async with RTVIClient(bot.url, token="t0k"):
        pass
    async with RTVIClient(bot.url + "?a=1", token="a b"):
        pass
    assert bot.paths == ["/ws?token=t0k", "/ws?a=1&token=a%20b"]


async def test_request_resolves_on_server_response_and_raises_on_error_response(bot: FakeBot) -> None:
    async with RTVIClient(bot.url) as client:
        await client.ready()
        assert await client.request("echo", {"n": 1}) == {"n": 1}
        assert await client.request("echo") is None
        with pytest.raises(RTVIErrorResponse) as info:
            await client.request("fail", [1, 2])
        assert info.value.error == "no such thing"
        with pytest.raises(TimeoutError):
            await client.request("unanswered", timeout=0.05)
    sent = [m for m in bot.messages if m["type"] == "client-message"]
    assert [m["data"] for m in sent] == [
        {"t": "echo", "d": {"n": 1}},
        {"t": "echo"},  # d left out, as JSON.stringify drops undefined
        {"t": "fail", "d": [1, 2]},
        {"t": "unanswered"},
    ]
    assert len({m["id"] for m in sent}) == 4


@pytest.mark.parametrize("data", [None, {"version": "2.1"}, {"version": "v2.1.0"}])
async def test_ready_fails_on_a_bot_ready_the_web_client_cannot_use(bot: FakeBot, data: Any) -> None:
    bot.reply = lambda m: [bot_ready(data, m["id"])] if m["type"] == "client-ready" else []
    async with RTVIClient(bot.url) as client:
        with pytest.raises(RTVIProtocolError, match="bot-ready"):
            await client.ready()
        assert client.bot_ready is None and client.bot_version is None
    assert client.of_type("bot-ready")  # kept for inspection


async def test_server_audio_and_interruptions_are_collected(bot: FakeBot) -> None:
    chunks = [bytes([n]) * 960 for n in range(3)]
    bot.reply = lambda m: [
        *default_reply(m),
        audio_frame(chunks[0]),
        pb.Frame(interruption=pb.InterruptionFrame()).SerializeToString(),
        audio_frame(chunks[1]),
        audio_frame(chunks[2]),
        message_frame({"label": "rtvi-ai", "type": "bot-stopped-speaking"}),
    ]
    async with RTVIClient(bot.url) as client:
        await client.ready()
        assert await client.wait_for_audio(2880) == 2880
        await client.wait_for("bot-stopped-speaking")
    assert client.audio == b"".join(chunks)
    assert [size for _, size in client.audio_arrivals] == [960, 960, 960]
    times = [at for at, _ in client.audio_arrivals]
    assert times == sorted(times)
    assert client.audio_sample_rate == 24000 and client.interruptions == 1
    assert client.protocol_errors == []


async def test_server_text_frame_is_a_protocol_error(bot: FakeBot) -> None:
    bot.reply = lambda m: ['{"label":"rtvi-ai","type":"bot-ready"}', *default_reply(m)]
    async with RTVIClient(bot.url) as client:
        with pytest.raises(RTVIProtocolError, match="TEXT frame"):
            await client.ready()
        assert len(client.protocol_errors) == 1
        # Raised once; the session goes on.
        assert (await client.wait_for("bot-ready"))["data"]["version"] == "2.1.0"


async def test_invalid_server_messages_are_protocol_errors(bot: FakeBot) -> None:
    async with RTVIClient(bot.url) as client:
        await client.ready()
        await bot.send(
            message_frame({"label": "rtvi-ai", "type": "bot-llm-text", "data": {"txt": "x"}}),
            message_frame({"label": "other", "type": "server-message", "data": {}}),
            pb.Frame(text=pb.TextFrame(text="hi")).SerializeToString(),
            b"\xff\xff",
            message_frame({"label": "rtvi-ai", "type": "server-message", "data": {"ok": True}}),
        )
        raised = 0
        while True:  # each wait raises the errors that arrived since the last one, then carries on
            try:
                await client.wait_for("server-message", predicate=lambda m: m["data"] == {"ok": True})
                break
            except RTVIProtocolError:
                raised += 1
    assert 1 <= raised <= 4
    errors = client.protocol_errors
    assert len(errors) == 4, errors
    assert "'bot-llm-text'" in errors[0] and "label" in errors[1]
    assert "'text'" in errors[2] and "undecodable" in errors[3]


async def test_helpers_send_what_the_web_client_sends(bot: FakeBot) -> None:
    async with RTVIClient(bot.url) as client:
        with pytest.raises(RuntimeError, match="ready"):
            await client.send_text("too early")
        await client.ready()
        await client.send_text("hi")
        await client.send_text("hey", run_immediately=True, audio_response=False)
        await client.disconnect_bot()
        await client.send_function_call_result("get_weather", "call_1", {"city": "Oslo"}, {"temp": 3})
        await client.send_dtmf("12#")
        await client.send_message("custom", id="abcdef01")
        await client.send_raw(b"\x00garbage")
        await client.send_raw("text frame")
        frames = await bot.wait_frames(9)
    assert [(m["type"], m.get("data")) for m in bot.messages[1:]] == [
        ("send-text", {"content": "hi", "options": {}}),
        ("send-text", {"content": "hey", "options": {"run_immediately": True, "audio_response": False}}),
        ("disconnect-bot", {}),
        (
            "llm-function-call-result",
            {
                "function_name": "get_weather",
                "tool_call_id": "call_1",
                "arguments": {"city": "Oslo"},
                "result": {"temp": 3},
            },
        ),
        ("dtmf", {"buttons": ["1", "2", "#"]}),
        ("custom", None),
    ]
    assert bot.messages[-1]["id"] == "abcdef01"
    assert frames[-2:] == [b"\x00garbage", "text frame"]


async def test_dtmf_follows_the_bot_version(bot: FakeBot) -> None:
    version = "2.0.3"
    bot.reply = lambda m: [bot_ready({"version": version})] if m["type"] == "client-ready" else []
    async with RTVIClient(bot.url) as client:
        await client.ready()
        await client.send_dtmf("12")
        await bot.wait_frames(3)
    assert [m["data"] for m in bot.messages[1:]] == [{"button": "1"}, {"button": "2"}]
    version = "1.2.0"
    async with RTVIClient(bot.url) as client:
        await client.ready()
        with pytest.raises(RuntimeError, match="DTMF"):
            await client.send_dtmf("1")


async def test_clean_close_leaves_nothing_running(bot: FakeBot) -> None:
    async with RTVIClient(bot.url) as client:
        await client.ready()
        reader = client._reader
    assert reader is not None and reader.done()
    assert client.closed.is_set() and client.close_code == 1000
    async with asyncio.timeout(5):
        await bot.disconnected.wait()
    assert bot.close_codes == [1000]


async def test_server_close_sets_closed_and_ends_waits(bot: FakeBot) -> None:
    async with RTVIClient(bot.url) as client:
        await client.ready()
        assert bot.connection is not None
        await bot.connection.close(4001, "bye")
        await client.closed.wait()
        assert client.close_code == 4001
        with pytest.raises(ConnectionError, match="4001"):
            await client.wait_for("bot-llm-text")


def test_load_wav_reads_the_shared_test_audio() -> None:
    pcm, sample_rate, num_channels = load_wav(AUDIO / "utt01_weather.wav")
    assert (sample_rate, num_channels) == (16000, 1)
    assert len(pcm) == 2 * 47048


def json_reply(message: dict[str, Any]) -> list[bytes | str]:
    """The well-behaved bot on the JSON wire: the same answers, as text frames."""
    return [
        json.dumps(json.loads(pb.Frame.FromString(frame).message.data)) for frame in default_reply(message)
    ]  # type: ignore[arg-type]


async def test_json_wire_sends_rtvi_json_text_and_raw_audio(bot: FakeBot) -> None:
    bot.reply = json_reply
    pcm = bytes(range(256)) * 3  # 768 bytes: one whole 512-byte chunk and a padded one
    async with RTVIClient(bot.url, wire="json") as client:
        ready = await client.ready()
        assert ready["data"]["version"] == "2.1.0"
        assert await client.request("echo", {"n": 2}) == {"n": 2}
        await client.stream_audio(pcm, realtime=False)
        frames = await bot.wait_frames(4)
    assert bot.paths == ["/ws?wire=json"]
    assert all(isinstance(frame, str) for frame in frames)
    first = json.loads(frames[0])
    assert first["type"] == "client-ready" and first["data"]["version"] == "2.1.0"
    audio = [m["data"] for m in bot.messages if m["type"] == "raw-audio"]
    assert [a["sampleRate"] for a in audio] == [16000, 16000] and {a["numChannels"] for a in audio} == {1}
    sent = b"".join(base64.b64decode(a["base64Audio"]) for a in audio)
    assert sent == pcm + bytes(256)
    assert client.protocol_errors == []


async def test_json_wire_collects_bot_audio_messages(bot: FakeBot) -> None:
    chunks = [bytes([n]) * 960 for n in range(1, 3)]

    def audio(pcm: bytes) -> str:
        data = {"audio": base64.b64encode(pcm).decode(), "sample_rate": 24000, "num_channels": 1}
        return json.dumps({"label": "rtvi-ai", "type": "bot-tts-audio", "data": data})

    bot.reply = lambda m: [*json_reply(m), audio(chunks[0]), audio(chunks[1])]
    async with RTVIClient(bot.url, wire="json") as client:
        await client.ready()
        assert await client.wait_for_audio(1920) == 1920
        await bot.send(audio_frame(b"\0\0"))
        with pytest.raises(RTVIProtocolError, match="binary frame on the JSON wire"):
            await client.wait_for("never", timeout=5)
    assert client.audio == b"".join(chunks) and client.audio_sample_rate == 24000
    assert [m["type"] for m in client.messages] == ["bot-ready"]  # audio is not kept as messages


async def test_wire_must_be_known() -> None:
    with pytest.raises(ValueError, match="wire must be"):
        RTVIClient("ws://127.0.0.1:1/ws", wire="xml")  # type: ignore[arg-type]


async def test_a_waiter_looks_at_each_message_once(bot: FakeBot) -> None:
    # Rescanning every message on each arrival made a wait over n arrivals cost n^2 / 2 checks.
    count = 100
    looked: collections.Counter[int] = collections.Counter()
    arrived = [asyncio.Event() for _ in range(count)]

    def is_last(message: dict[str, Any]) -> bool:
        n = message["data"]["n"]
        looked[n] += 1
        arrived[n].set()
        return bool(n == count - 1)

    async with RTVIClient(bot.url) as client:
        waiter = asyncio.create_task(client.wait_for("server-message", predicate=is_last))
        for n in range(count):
            await bot.send(message_frame({"label": "rtvi-ai", "type": "server-message", "data": {"n": n}}))
            async with asyncio.timeout(5):
                await arrived[n].wait()  # the waiter has woken for this one before the next is sent
        assert (await waiter)["data"]["n"] == count - 1
    assert looked == {n: 1 for n in range(count)}
