"""The default offline bot answering phone calls: shared test speech as 8 kHz G.711, every model real.

What the caller hears is what the emulator's line played at real time; what the bot stored is read
back from its context, and it must be what the line played, mark by mark.
"""

from __future__ import annotations

import json
import re
from typing import Any

import pytest

from helpers.bots import ContextKeepingBot
from helpers.paths import AUDIO
from helpers.speech import silence, spoken
from helpers.telephony import PROVIDERS, phone_server
from voxloop.audio import PCMConverter
from voxloop.bots import SessionInfo
from voxloop.frames import InputDTMFFrame, InterruptionFrame, KeypadEntry, OutputAudioRawFrame, TTSTextFrame
from voxloop.pipeline import BaseObserver, FramePushed, PipelineTask
from voxloop.services.local.demo_agent import HELP
from voxloop.testing import load_wav
from voxloop.transports.base_output import BaseOutputTransport

pytestmark = pytest.mark.timeout(120)


@pytest.fixture(autouse=True)
def offline(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    monkeypatch.delenv("OPENAI_BASE_URL", raising=False)
    monkeypatch.setenv("VOXLOOP_TTS", "espeak")


def words(text: str) -> list[str]:
    return re.findall(r"[a-z0-9:']+", text.lower())


class IntoTheOutput(BaseObserver):
    """The bot's audio and spoken text as they reach the output (before any mark), and DTMF keys."""

    def __init__(self) -> None:
        self.frames: list[OutputAudioRawFrame | TTSTextFrame] = []
        self.interrupted_at: list[int] = []  # len(frames) when an interruption reached the output
        self.dtmf: list[KeypadEntry] = []
        self._dtmf_ids: set[int] = set()

    async def on_push_frame(self, data: FramePushed) -> None:
        frame = data.frame
        if isinstance(data.destination, BaseOutputTransport) and data.direction == 1:
            if isinstance(frame, OutputAudioRawFrame | TTSTextFrame):
                self.frames.append(frame)
            elif isinstance(frame, InterruptionFrame):
                self.interrupted_at.append(len(self.frames))
        if isinstance(frame, InputDTMFFrame) and frame.id not in self._dtmf_ids:  # once, not per hop
            self._dtmf_ids.add(frame.id)
            self.dtmf.append(frame.button)

    def words_heard(self, played_samples: int, upto: int, block: int = 1) -> list[str]:
        """The text whose preceding audio had all played after ``played_samples`` of 8 kHz audio.

        The output converts the TTS audio to 8 kHz exactly as this does (one streaming resampler),
        and it marks the end of each audio frame: text after a frame counts as heard once the line
        has played up to that frame's end (for a provider taking whole ``block``-sample messages,
        up to the last whole block: the rest goes out with the next frame).
        """
        converter = PCMConverter(8000)
        position, heard = 0, []
        for frame in self.frames[:upto]:
            if isinstance(frame, OutputAudioRawFrame):
                position += len(converter.convert(frame.audio, frame.sample_rate, frame.num_channels)) // 2
            elif position - position % block <= played_samples:
                heard += words(frame.text)
        return heard


class ObservedBot(ContextKeepingBot):
    def __init__(self) -> None:
        super().__init__("default")
        self.seen = IntoTheOutput()
        self.sessions: list[SessionInfo] = []

    def __call__(self, transport: Any, session: SessionInfo) -> PipelineTask:
        self.sessions.append(session)
        task = super().__call__(transport, session)
        task.add_observer(self.seen)
        return task


def assistant_texts(messages: list[dict[str, Any]]) -> list[str]:
    return [m["content"] for m in messages if m["role"] == "assistant" and m.get("content")]


@pytest.mark.parametrize("provider", PROVIDERS)
async def test_a_call_is_transcribed_answered_aloud_with_the_time_and_hears_dtmf(
    speech_workers, provider
) -> None:
    weather, rate, _ = load_wav(AUDIO / "utt01_weather.wav")
    what_time = await spoken("What time is it?")
    bot = ObservedBot()
    async with phone_server(provider, bot) as (webhook, _app, cloud), cloud.call(webhook) as call:
        await call.dial()
        context = bot.contexts
        await call.send_audio(silence(0.3) + weather + silence(1.2), rate)
        await call.line.wait_until(lambda: len(assistant_texts(context[0].messages)) >= 1, timeout=30)
        await call.press("5")
        await call.send_audio(what_time + silence(1.2), 16000)
        await call.line.wait_until(lambda: len(assistant_texts(context[0].messages)) >= 2, timeout=30)
        await call.wait_for_quiet_line()
        await call.hang_up()
    assert call.protocol_errors == []
    messages = bot.contexts[0].messages
    users = [m["content"] for m in messages if m["role"] == "user"]
    assert {"weather", "paris"} <= set(words(users[0])), users  # 8 kHz mu-law speech, transcribed right
    assert {"what", "time"} <= set(words(users[1])), users
    tool = next(m for m in messages if m["role"] == "tool")
    assert json.loads(tool["content"])["time"] in assistant_texts(messages)[-1]  # the time, by a function
    assert call.line.voiced_secs() > 1.0  # the answers were spoken on the line
    assert call.line.starved_frames == 0, "the line never ran dry mid-reply"
    assert call.line.max_buffered_secs < 0.3  # and the server never ran far ahead of it
    assert bot.seen.dtmf == [KeypadEntry.FIVE]
    assert bot.sessions[0].call is not None and bot.sessions[0].call.from_number == call.from_number


#: Wire bytes per 8 kHz sample, and the whole blocks (in samples) the provider takes bot audio in.
WIRE = {"twilio": (1, 1), "exotel": (2, 160)}


@pytest.mark.parametrize("provider", sorted(WIRE))
async def test_barge_in_clears_the_line_and_stores_only_the_words_whose_marks_came_back(
    speech_workers, provider
) -> None:
    ask_help = await spoken("Help.")
    interrupt, rate, _ = load_wav(AUDIO / "utt04_lights.wav")
    bot = ObservedBot()
    sample_bytes, block = WIRE[provider]
    async with phone_server(provider, bot) as (webhook, _app, cloud), cloud.call(webhook) as call:
        await call.dial()
        await call.send_audio(silence(0.3) + ask_help + silence(1.2), 16000)
        await call.wait_for_played(2.5, timeout=30)
        await call.send_audio(interrupt + silence(1.2), rate)  # talking over the long help answer
        await call.line.wait_until(lambda: any(call.line.played_at_clears), timeout=20)
        await call.line.wait_until(lambda: len(assistant_texts(bot.contexts[0].messages)) >= 2, timeout=30)
        await call.hang_up()
    assert call.protocol_errors == []
    played_at_clear = next(p for p in call.line.played_at_clears if p > 0)
    # (Whether the clear still found audio to drop depends on timing: the bot's output pauses at the
    # speech onset, so the line may have played out its 160 ms before the barge-in is confirmed.)
    barge_in = next(i for i in bot.seen.interrupted_at if i > 0)
    stored = assistant_texts(bot.contexts[0].messages)[0]
    heard = bot.seen.words_heard(played_at_clear // sample_bytes, barge_in, block)
    assert words(stored) == heard
    assert 0 < len(heard) < len(words(HELP))
