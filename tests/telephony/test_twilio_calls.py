"""Twilio calls end to end: the Twilio emulator dials the dev server, real sockets, real codecs."""

from __future__ import annotations

import asyncio

import numpy as np
import pytest

from helpers.paths import AUDIO
from helpers.telephony import twilio_server
from voxloop.bots import SessionInfo
from voxloop.bots.echo import Echo
from voxloop.frames import Frame, InputDTMFFrame, KeypadEntry, OutputAudioRawFrame, TTSTextFrame
from voxloop.pipeline import FrameDirection, FrameProcessor, Pipeline, PipelineTask
from voxloop.rtvi import RTVIProcessor
from voxloop.testing import load_wav
from voxloop.transports import Transport

pytestmark = pytest.mark.timeout(60)


class EchoCallBot:
    """The echo bot, keeping each call's session info."""

    def __init__(self) -> None:
        self.sessions: list[SessionInfo] = []
        self.tasks: list[PipelineTask] = []

    def __call__(self, transport: Transport, session: SessionInfo) -> PipelineTask:
        self.sessions.append(session)
        task = PipelineTask(Pipeline([RTVIProcessor(), transport.input(), Echo(), transport.output()]))
        self.tasks.append(task)
        return task


async def test_an_echo_call_plays_the_callers_audio_back_and_acknowledges_its_marks() -> None:
    pcm, rate, _ = load_wav(AUDIO / "utt02_timer.wav")
    bot = EchoCallBot()
    async with (
        twilio_server(bot) as (webhook, app, cloud),
        cloud.call(webhook, from_number="+14155550100") as call,
    ):
        await call.dial()
        await call.send_audio(pcm[: rate * 2 * 2], rate)  # two seconds of speech
        await call.wait_for_played(1.0)
        await call.hang_up()
        await asyncio.wait_for(app.state.sessions.empty.wait(), 10)
    assert call.protocol_errors == []
    assert call.line.played_marks, "marks were sent and came back once played"
    info = bot.sessions[0]
    assert info.transport == "twilio" and info.call is not None
    assert (info.call.call_id, info.call.stream_id) == (call.call_sid, call.stream_sid)
    assert info.call.from_number == "+14155550100"
    assert info.call.custom_parameters == {}  # the server's own parameters are taken out


class Recorder(FrameProcessor):
    """After the output: what it let through (what the assistant context would store)."""

    def __init__(self) -> None:
        super().__init__()
        self.words: list[str] = []

    async def process_frame(self, frame: Frame, direction: FrameDirection) -> None:
        if isinstance(frame, TTSTextFrame):
            self.words.append(frame.text)
        await self.push_frame(frame, direction)


class Speaker(FrameProcessor):
    """Key 1: says "one two three", each word followed by 0.2 s of tone; key 9: interrupts."""

    async def process_frame(self, frame: Frame, direction: FrameDirection) -> None:
        await self.push_frame(frame, direction)
        if isinstance(frame, InputDTMFFrame) and frame.button is KeypadEntry.ONE:
            tone = (np.sin(np.arange(3200) * 0.3) * 8000).astype("<i2").tobytes()
            for word in ("one", "two", "three"):
                await self.push_frame(TTSTextFrame(text=word, aggregated_by="word"))
                await self.push_frame(OutputAudioRawFrame(audio=tone, sample_rate=16000, num_channels=1))
        elif isinstance(frame, InputDTMFFrame) and frame.button is KeypadEntry.NINE:
            await self.broadcast_interruption()


class SpeakerBot:
    def __init__(self) -> None:
        self.recorder = Recorder()

    def __call__(self, transport: Transport, session: SessionInfo) -> PipelineTask:
        processors = [RTVIProcessor(), transport.input(), Speaker(), transport.output(), self.recorder]
        return PipelineTask(Pipeline(processors))


async def test_text_passes_the_output_only_once_the_line_has_played_the_audio_before_it() -> None:
    bot = SpeakerBot()
    async with twilio_server(bot) as (webhook, _app, cloud), cloud.call(webhook) as call:
        await call.dial()
        call.line.stalled = True  # the line plays nothing: no mark can come back
        await call.press("1")
        # The third word's audio is being sent (the resampler holds back a few ms), so all three
        # words have passed through the output's queue.
        await call.line.wait_until(lambda: call.line.sent_bytes >= 4000)
        assert bot.recorder.words == ["one"]  # before any audio: nothing unheard in front of it
        call.line.stalled = False
        await call.wait_for_quiet_line()
    assert bot.recorder.words == ["one", "two", "three"]
    assert call.protocol_errors == []


async def test_an_interruption_clears_the_line_and_drops_the_text_that_was_not_heard() -> None:
    bot = SpeakerBot()
    async with twilio_server(bot) as (webhook, _app, cloud), cloud.call(webhook) as call:
        await call.dial()
        call.line.stalled = True
        await call.press("1")
        await call.line.wait_until(lambda: call.line.sent_bytes >= 1600)  # "two" is held behind sent audio
        await call.press("9")
        await call.line.wait_until(lambda: call.line.clears >= 1)
        call.line.stalled = False
        await call.wait_for_quiet_line()
    assert call.line.cleared_marks, "the clear gave the pending marks back"
    assert bot.recorder.words == ["one"]  # the marks a clear returns do not count as played
    assert call.protocol_errors == []
