"""Twilio calls end to end: the Twilio emulator dials the dev server, real sockets, real codecs."""

from __future__ import annotations

import asyncio

import httpx
import numpy as np
import pytest

from helpers.paths import AUDIO
from helpers.phone_bots import SpeakerBot
from helpers.telephony import twilio_server
from voxloop.bots import SessionInfo
from voxloop.bots.echo import Echo
from voxloop.frames import Frame, InputDTMFFrame, KeypadEntry, OutputAudioRawFrame
from voxloop.pipeline import FrameDirection, FrameProcessor, Pipeline, PipelineTask
from voxloop.rtvi import RTVIProcessor
from voxloop.testing import load_wav
from voxloop.testing.telephony import TwilioEmulator, TwimlStream
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


async def test_the_echo_comes_back_without_a_resampler_burst_of_delay() -> None:
    """bench/telephony.py's echo latency: first caller frame sent to first bot frame played. It is the
    output's lead and the line's ticks; soxr "MQ" held the first 16 -> 8 kHz audio back for another
    ~80 ms (104-128 ms in all, against 23-47 ms now, on two loaded cores)."""
    pcm, rate, _ = load_wav(AUDIO / "utt01_weather.wav")
    async with twilio_server(EchoCallBot()) as (webhook, _app, cloud), cloud.call(webhook) as call:
        await call.dial()
        loop = asyncio.get_running_loop()
        sent_at = loop.time()
        await call.send_audio(pcm[: rate * 2], rate)  # one second of speech
        await call.wait_for_quiet_line()
    assert call.line.first_played_at is not None
    latency = call.line.first_played_at - sent_at
    assert latency < 0.08, f"the echo took {latency * 1000:.0f} ms"


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


async def test_a_forged_or_unsigned_webhook_is_refused_and_no_call_starts() -> None:
    bot = EchoCallBot()
    async with twilio_server(bot) as (webhook, app, cloud):
        forged = await cloud.call(webhook, signature="bm90IGEgc2lnbmF0dXJl").post_webhook()
        assert forged.status_code == 403 and "does not match" in forged.text
        wrong_token = TwilioEmulator(webhook, "another-accounts-token").post_webhook()
        assert (await wrong_token).status_code == 403
        async with httpx.AsyncClient() as http:
            unsigned = await http.post(webhook, data={"CallSid": "CA1", "From": "+1555"})
        assert unsigned.status_code == 403 and "no X-Twilio-Signature" in unsigned.text
    assert bot.sessions == []


async def test_a_media_socket_without_the_webhooks_token_is_refused() -> None:
    bot = EchoCallBot()
    async with twilio_server(bot) as (webhook, app, cloud), cloud.call(webhook) as call:
        ws_url = webhook.replace("http://", "ws://") + "/ws"
        await call.open_stream(ws_url, {"voxloop_token": "guessed"})
        await asyncio.wait_for(call.closed.wait(), 10)
    assert bot.sessions == []


async def test_with_checking_turned_off_an_unsigned_call_is_served() -> None:
    bot = EchoCallBot()
    async with twilio_server(bot, verify=False) as (webhook, app, cloud):
        async with httpx.AsyncClient() as http:
            reply = await http.post(webhook, data={"CallSid": "CA1", "From": "+1555"})
        assert reply.status_code == 200
        stream = TwimlStream(reply.text)
        async with cloud.call(webhook) as call:
            await call.open_stream(stream.url, stream.parameters)
            await call.send_audio(load_wav(AUDIO / "utt02_timer.wav")[0][:32000], 16000)
            await call.wait_for_played(0.5)
            await call.hang_up()
    assert bot.sessions[0].call is not None and bot.sessions[0].call.from_number == "+1555"


class LongReply(FrameProcessor):
    """Key 1: 12 s of tone at once, in 0.5 s frames, as a fast TTS delivers a long reply."""

    SECONDS = 12

    async def process_frame(self, frame: Frame, direction: FrameDirection) -> None:
        await self.push_frame(frame, direction)
        if isinstance(frame, InputDTMFFrame) and frame.button is KeypadEntry.ONE:
            tone = (np.sin(np.arange(8000) * 0.2) * 8000).astype("<i2").tobytes()  # 0.5 s at 16 kHz
            for _ in range(2 * self.SECONDS):
                await self.push_frame(OutputAudioRawFrame(audio=tone, sample_rate=16000, num_channels=1))


async def test_a_long_reply_plays_at_real_time_without_drift_starving_or_running_ahead() -> None:
    """The smoke of bench/telephony.py's long call: the line never starves, never holds more than the
    output's lead plus a chunk, and the reply takes its own length to play, not more."""

    def create(transport: Transport, session: SessionInfo) -> PipelineTask:
        return PipelineTask(Pipeline([RTVIProcessor(), transport.input(), LongReply(), transport.output()]))

    async with twilio_server(create) as (webhook, _app, cloud), cloud.call(webhook) as call:
        await call.dial()
        await call.press("1")
        await call.wait_for_played(LongReply.SECONDS - 0.1, timeout=30)
        await call.wait_for_quiet_line()
    line = call.line
    assert line.first_played_at is not None and line.last_played_at is not None
    playing = line.last_played_at - line.first_played_at + 0.02
    played = line.played_bytes / 8000
    assert line.played_bytes == line.sent_bytes  # everything sent was played
    # All of it, but for the tail the output's streaming resampler still holds (its filter's lookahead,
    # about 5 ms at 16 -> 8 kHz: this reply has no TTSStoppedFrame to let it out).
    assert LongReply.SECONDS - 0.01 < played <= LongReply.SECONDS
    assert abs(playing - played) < 0.1, f"{played:.2f} s of audio took {playing:.2f} s to play"
    assert line.starved_frames == 0
    assert line.max_buffered_secs <= 0.16 + 0.04 + 0.02  # the lead, a chunk, one tick of jitter
    assert line.pending_marks == 0 and len(line.played_marks) >= LongReply.SECONDS * 25 - 2
    assert call.protocol_errors == []
