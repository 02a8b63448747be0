"""MemoryTransport: a bot's pipeline in-process with a scripted client, through the real transport bases."""

from __future__ import annotations

import asyncio
import collections
import re
from typing import Any

import numpy as np
import pytest

from voxloop.bots import BotLoadError, SessionInfo, echo
from voxloop.frames import (
    BotStartedSpeakingFrame,
    BotStoppedSpeakingFrame,
    InputAudioRawFrame,
    InterruptionFrame,
    OutputTransportMessageUrgentFrame,
    TTSAudioRawFrame,
)
from voxloop.pipeline import Pipeline, PipelineTask
from voxloop.rtvi import RTVIProcessor, RTVIServerMessageFrame
from voxloop.testing import (
    FakeClock,
    MemoryTransport,
    PipelineHarness,
    RTVIErrorResponse,
    RTVIProtocolError,
    settle,
)
from voxloop.transports import Transport, TransportParams

MS = 1_000_000


def tone(ms: int, rate: int, hz: float = 440.0) -> bytes:
    t = np.arange(rate * ms // 1000) / rate
    return (np.sin(2 * np.pi * hz * t) * 8000).astype("<i2").tobytes()


def peak(pcm: bytes | bytearray) -> int:
    return int(np.abs(np.frombuffer(bytes(pcm), dtype="<i2").astype(np.int32)).max(initial=0))


async def test_echo_bot_handshake_requests_and_audio_round_trip(no_leaked_tasks: None) -> None:
    transport = MemoryTransport()
    assert isinstance(transport, Transport)
    async with transport.run_bot(echo.create_bot, SessionInfo("s1", "memory")) as client:
        bot_ready = await client.ready()
        assert bot_ready["data"]["version"] == "2.1.0"
        assert await client.request("ping", {"n": 1}) == {"echo": {"n": 1}, "session": "s1"}
        await client.send_message("no-such-type", {}, id="bad00001")
        refused = await client.wait_for_message("error-response")
        assert refused["id"] == "bad00001"
        await client.stream_audio(tone(500, 16000), sample_rate=16000, realtime=False)
        # 16 kHz in, 24 kHz out (the output's rate): 1.5x the bytes, less the resampler's delay.
        await client.wait_for_audio(int(500 * 48 * 0.95))
    assert client.closed.is_set()
    assert client.audio_sample_rate == 24000 and peak(client.audio) > 5000
    assert client.protocol_errors == []
    # What left the output downstream is recorded: the played chunks, in order, then the End.
    played = [f for f in transport.output_frames if hasattr(f, "audio")]
    assert sum(len(f.audio) for f in played) == len(client.audio)


async def test_audio_in_is_converted_to_the_pipeline_rate() -> None:
    transport = MemoryTransport()
    async with PipelineHarness(Pipeline([transport.input(), transport.output()])) as h:
        # 48 kHz stereo in: mono at 16 kHz comes out of the input.
        stereo = np.repeat(np.frombuffer(tone(500, 48000), dtype="<i2"), 2).tobytes()
        await transport.client.stream_audio(stereo, sample_rate=48000, num_channels=2, realtime=False)
        await h.down_recorder.wait_for(InputAudioRawFrame)
    frames = h.down_recorder.of_type(InputAudioRawFrame)
    assert {(f.sample_rate, f.num_channels) for f in frames} == {(16000, 1)}
    # 500 ms at 16 kHz, less what the streaming resampler still holds.
    assert 7000 <= sum(len(f.audio) for f in frames) // 2 <= 8000


async def test_realtime_audio_follows_a_fake_clock() -> None:
    clock = FakeClock()
    transport = MemoryTransport()
    async with PipelineHarness(Pipeline([transport.input(), transport.output()]), clock=clock) as h:
        sending = asyncio.create_task(
            transport.client.stream_audio(tone(200, 16000), sample_rate=16000, chunk_ms=20)
        )
        await clock.advance(0.05)  # chunks due at 0, 20 and 40 ms are in; the rest wait for time
        assert len(h.down_recorder.of_type(InputAudioRawFrame)) == 3 and not sending.done()
        await clock.advance(0.2)
        await sending
    assert len(h.down_recorder.of_type(InputAudioRawFrame)) == 10


async def test_output_is_paced_and_an_interruption_reaches_the_client() -> None:
    clock = FakeClock()
    params = TransportParams(audio_out_chunk_ms=40, audio_out_lead_ms=100)
    transport = MemoryTransport(params)
    client = transport.client
    async with PipelineHarness(Pipeline([transport.input(), transport.output()]), clock=clock) as h:
        t0 = clock.now_ns()
        await h.push(TTSAudioRawFrame(audio=tone(1000, 24000), sample_rate=24000, num_channels=1))
        await clock.advance(0.2)
        await h.down_recorder.wait_for(BotStartedSpeakingFrame)
        # Chunk n plays at 40n ms and is written 100 ms ahead: by 200 ms, chunks 0..7.
        assert [(t - t0) // MS for t, _ in client.audio_writes] == [max(0, 40 * n - 100) for n in range(8)]
        await h.push(InterruptionFrame())
        await h.down_recorder.wait_for(BotStoppedSpeakingFrame)
        written = len(client.audio)
        await clock.advance(1.0)
    assert client.interruptions == 1
    assert len(client.audio) == written == 8 * 1920  # nothing more was played after the interruption


async def test_client_leaving_fires_the_event_and_cancels_the_bot(no_leaked_tasks: None) -> None:
    transport = MemoryTransport()
    events: list[str] = []
    transport.add_event_handler("on_client_connected", lambda t: events.append("connected"))
    transport.add_event_handler("on_client_disconnected", lambda t: events.append("disconnected"))
    tasks: list[PipelineTask] = []

    def bot(t: Transport, session: SessionInfo) -> PipelineTask:
        tasks.append(echo.create_bot(t, session))
        return tasks[0]

    async with transport.run_bot(bot) as client:
        await client.ready()
        await client.disconnect()
        await tasks[0].wait_until_finished()
        with pytest.raises(ConnectionError):
            await client.send_message("client-message", {"t": "too late"})
        with pytest.raises(ConnectionError):
            await client.wait_for_message("never")
    assert events == ["connected", "disconnected"]


async def test_close_ends_the_session_for_the_client() -> None:
    transport = MemoryTransport()
    disconnected = asyncio.Event()
    transport.add_event_handler("on_client_disconnected", lambda t: disconnected.set())
    async with PipelineHarness(Pipeline([RTVIProcessor(), transport.input(), transport.output()])):
        await transport.client.ready()
        waiting = asyncio.create_task(transport.client.wait_for_message("never"))
        await settle()
        await transport.close()
        await transport.close()  # twice is fine
        with pytest.raises(ConnectionError, match="closed"):
            await waiting
    assert disconnected.is_set() and transport.client.closed.is_set()


async def test_a_message_json_cannot_carry_is_dropped_and_the_session_goes_on(
    caplog: pytest.LogCaptureFixture,
) -> None:
    transport = MemoryTransport()
    async with PipelineHarness(Pipeline([RTVIProcessor(), transport.input(), transport.output()])) as h:
        await transport.client.ready()
        await h.push(RTVIServerMessageFrame(data={"not json": object()}))
        await h.push(RTVIServerMessageFrame(data={"fine": True}))
        message = await transport.client.wait_for_message("server-message")
    assert message["data"] == {"fine": True}
    assert "cannot send message" in caplog.text


async def test_an_invalid_server_message_is_raised_from_the_next_wait() -> None:
    transport = MemoryTransport()
    async with PipelineHarness(Pipeline([RTVIProcessor(), transport.input(), transport.output()])) as h:
        await transport.client.ready()
        await h.push(OutputTransportMessageUrgentFrame(message={"label": "rtvi-ai", "type": "made-up"}))
        with pytest.raises(RTVIProtocolError, match="made-up"):
            await transport.client.wait_for_message("never", timeout=5)


async def test_error_responses_raise_and_a_bad_bot_is_refused() -> None:
    from helpers.bots import answering_rtvi

    def bot(t: Transport, session: SessionInfo) -> PipelineTask:
        return PipelineTask(Pipeline([answering_rtvi(), t.input(), t.output()]))

    async with MemoryTransport().run_bot(bot) as client:
        await client.ready()
        with pytest.raises(RTVIErrorResponse, match="asked to fail"):
            await client.request("fail")
        assert await client.request("still", "alive") == {"echo": "alive"}

    def not_a_bot(t: Transport, session: SessionInfo) -> PipelineTask:
        return "nope"  # type: ignore[return-value]

    with pytest.raises(BotLoadError, match="not a PipelineTask"):
        async with MemoryTransport().run_bot(not_a_bot):
            pass


async def test_default_bot_answers_a_spoken_question(
    speech_workers: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The whole offline conversation (Silero, Whisper, demo agent, espeak-ng) with no server at all."""
    from helpers.speech import silence, spoken
    from voxloop.bots import default

    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    monkeypatch.delenv("OPENAI_BASE_URL", raising=False)
    monkeypatch.setenv("VOXLOOP_TTS", "espeak")
    question = await spoken("What time is it?")
    async with MemoryTransport().run_bot(default.create_bot) as client:
        await client.ready()
        await client.stream_audio(silence(0.3) + question + silence(1.0))
        heard = await client.wait_for_message("user-transcription", predicate=lambda m: m["data"]["final"])
        answer = await client.wait_for_message(
            "bot-output", predicate=lambda m: re.search(r"\d{1,2}:\d{2}", m["data"]["text"]) is not None
        )
        await client.wait_for_message("bot-stopped-speaking", timeout=20)
    assert "time" in heard["data"]["text"].lower()
    assert re.search(r"\d{1,2}:\d{2}", answer["data"]["text"])
    assert len(client.audio) > 0.5 * 24000 * 2 and peak(client.audio) > 1000  # the answer was spoken
    assert client.protocol_errors == []


async def test_a_waiter_looks_at_each_message_once() -> None:
    # Rescanning every message on each arrival made a wait over n arrivals cost n^2 / 2 checks.
    count = 100
    looked: collections.Counter[int] = collections.Counter()
    arrived = [asyncio.Event() for _ in range(count)]

    def is_last(message: dict[str, Any]) -> bool:
        n = message["data"]["n"]
        looked[n] += 1
        arrived[n].set()
        return bool(n == count - 1)

    transport = MemoryTransport()
    async with PipelineHarness(Pipeline([transport.input(), transport.output()])) as h:
        waiter = asyncio.create_task(transport.client.wait_for_message("server-message", predicate=is_last))
        for n in range(count):
            message = {"label": "rtvi-ai", "type": "server-message", "data": {"n": n}}
            await h.push(OutputTransportMessageUrgentFrame(message=message))
            async with asyncio.timeout(5):
                await arrived[n].wait()  # the waiter has woken for this one before the next is sent
        assert (await waiter)["data"]["n"] == count - 1
    assert looked == {n: 1 for n in range(count)}
