"""Twilio calls end to end: the Twilio emulator dials the dev server, real sockets, real codecs."""

from __future__ import annotations

import asyncio

import pytest

from helpers.paths import AUDIO
from helpers.telephony import twilio_server
from voxloop.bots import SessionInfo
from voxloop.bots.echo import Echo
from voxloop.pipeline import Pipeline, PipelineTask
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
    async with twilio_server(bot) as (webhook, app, cloud):
        call = cloud.call(webhook, from_number="+14155550100")
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
