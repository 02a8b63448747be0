"""Turn-taking of the default bot with Smart Turn on (``VOXLOOP_TURN=smart``, opt-in), end to end over the
real WebSocket wire, every model real.

Utterances with a thinking pause in the middle (600-1200 ms after "for", "and", "um", "the": the
espeak-ng voice, a fragment then silence then the rest) must stay one turn: one user message with every
word, one ``user-started-speaking`` / ``user-stopped-speaking`` pair, and no bot audio before the user
has finished. A finished question must end the turn on the detector's verdict, not at the silence limit.

Only cases the detector gets right are here; how many of the pause set still end early is a benchmark
figure (``bench/voice.py``, docs/benchmarks.md), not a test.
"""

from __future__ import annotations

import asyncio
import re
import time

import numpy as np
import pytest

from helpers.bots import ContextKeepingBot
from helpers.server import running_server, start_websocket_session
from helpers.speech import silence, spoken, spoken_with_pause
from voxloop.bots import SessionInfo
from voxloop.context import LLMUserAggregator
from voxloop.frames import (
    LLMContextFrame,
    LLMSpeculationFrame,
    TranscriptionFinishedFrame,
    UserStoppedSpeakingFrame,
    VADUserStoppedSpeakingFrame,
)
from voxloop.pipeline import BaseObserver, FramePushed, PipelineTask, walk
from voxloop.server import ServerConfig
from voxloop.services import LLMService
from voxloop.testing.rtvi_client import RTVIClient
from voxloop.testing.speech import PAUSE_SET, PAUSE_VOICES
from voxloop.transports import Transport

pytestmark = pytest.mark.timeout(150)

# Piper, a natural voice, with no word timings: the words before the pause are synthesised alone.
PIPER_PAUSED = [
    pytest.param(("Can you tell me about", 1.1, "the weather in Paris?", {"tell", "paris"}), id="about"),
    pytest.param(("I need a taxi and", 0.7, "a hotel room.", {"taxi", "room"}), id="and"),
]

PAUSED = [
    # (the sentence, the word the pause comes before, the pause in seconds, words the user message holds)
    pytest.param(("Turn off the lights and close the blinds.", "close", 1.2, {"lights", "blinds"}), id="and"),
    pytest.param(
        ("I want to know about the weather in Paris.", "the weather", 1.0, {"know", "paris"}), id="about"
    ),
]


@pytest.fixture(autouse=True)
def offline(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    monkeypatch.delenv("OPENAI_BASE_URL", raising=False)
    monkeypatch.setenv("VOXLOOP_TTS", "espeak")
    monkeypatch.setenv("VOXLOOP_TURN", "smart")


# Whisper on a loaded machine can take seconds on a segment. The turn waits that long for its words (the
# default 2 s would end it without them), and the silence limit is later than such a transcription, so the
# limit does not end the turn the moment the words come in, before the reply could be started at the pause.
TRANSCRIPTION_TIMEOUT_SECS = 15.0
MAX_SILENCE_SECS = 6.0


class TurnEnds(BaseObserver):
    """Pipeline-clock times (ns) of the finished STT segments and the turn ends, at the user aggregator."""

    def __init__(self) -> None:
        self.words_in: list[int] = []
        self.turn_ends: list[int] = []
        self.speech_ends: list[int] = []  # the VAD stops minus the VAD's stop delay
        self.llm_inputs: list[str] = []  # what reached the LLM: "start", "drop", "confirm", "context"

    async def on_push_frame(self, data: FramePushed) -> None:
        if isinstance(data.destination, LLMService):
            if isinstance(data.frame, LLMSpeculationFrame):
                self.llm_inputs.append(data.frame.action)
            elif isinstance(data.frame, LLMContextFrame):
                self.llm_inputs.append("context")
        if isinstance(data.destination, LLMUserAggregator) and isinstance(
            data.frame, TranscriptionFinishedFrame
        ):
            self.words_in.append(data.timestamp)
        elif isinstance(data.destination, LLMUserAggregator) and isinstance(
            data.frame, VADUserStoppedSpeakingFrame
        ):
            self.speech_ends.append(data.timestamp - int(data.frame.stop_secs * 1e9))
        elif isinstance(data.source, LLMUserAggregator) and isinstance(data.frame, UserStoppedSpeakingFrame):
            self.turn_ends.append(data.timestamp)

    def ended_before_the_silence_limit(self) -> bool:
        """The detector said "done": the turn ended well before ``MAX_SILENCE_SECS`` after the speech.

        (Not "right on the words": a thread-pool verdict under load can come a little after them.)
        """
        end = self.turn_ends[0]
        speech_end = max(t for t in self.speech_ends if t <= end)
        return end - speech_end < (MAX_SILENCE_SECS - 1.0) * 1e9

    def timing(self) -> str:
        end = self.turn_ends[0]
        return (
            f"turn end {[(t - end) / 1e9 for t in self.speech_ends + self.words_in]} s (speech ends, words)"
        )


class ObservedBot(ContextKeepingBot):
    def __init__(self) -> None:
        super().__init__("default")
        self.turns: list[TurnEnds] = []

    def __call__(self, transport: Transport, session: SessionInfo) -> PipelineTask:
        task = super().__call__(transport, session)
        users = [p for p in walk(task.pipeline) if isinstance(p, LLMUserAggregator)]
        assert len(users) == 1 and users[0].speculate, "the default bot did not switch Smart Turn on"
        users[0].params.transcription_timeout_secs = TRANSCRIPTION_TIMEOUT_SECS
        users[0].params.max_silence_secs = MAX_SILENCE_SECS
        self.turns.append(TurnEnds())
        task.add_observer(self.turns[-1])
        return task


# What a client hears of a reply being prepared (an abandoned speculation must send none of it).
REPLY_MESSAGES = {
    "bot-llm-started",
    "bot-llm-text",
    "bot-llm-stopped",
    "bot-tts-started",
    "bot-tts-text",
    "bot-output",
    "bot-started-speaking",
    "llm-function-call-in-progress",
}


def trimmed(pcm: bytes) -> bytes:
    """The speech only: piper pads its audio with silence, which would lengthen the pause."""
    samples = np.frombuffer(pcm, dtype="<i2")
    loud = np.flatnonzero(np.abs(samples.astype(np.int32)) > 300)
    return samples[loud[0] : loud[-1] + 1].tobytes()


def words(text: str) -> set[str]:
    return set(re.findall(r"[a-z0-9']+", text.lower()))


@pytest.mark.parametrize("case", PAUSED)
async def test_thinking_pauses_stay_inside_one_turn(speech_workers, case) -> None:
    sentence, before_word, pause, expected = case
    bot = ObservedBot()
    async with running_server(ServerConfig(bot=bot)) as (base, _app):
        for n in (0,):
            pcm = await spoken_with_pause(sentence, before_word, pause)
            async with RTVIClient(await start_websocket_session(base)) as client:
                await client.ready()
                await client.stream_audio(silence(0.3) + pcm)
                finished_at = time.monotonic()
                talking = asyncio.create_task(client.stream_audio(silence(3.0)))  # the microphone stays open
                await client.wait_for("user-stopped-speaking", timeout=30)
                await client.wait_for("bot-started-speaking", timeout=30)
                await talking
                early = [
                    m["type"]
                    for (t, _), m in zip(client.message_arrivals, client.messages, strict=True)
                    if t < finished_at and m["type"] in REPLY_MESSAGES
                ]
            context = bot.contexts[n]
            users = [m["content"] for m in context.messages if m["role"] == "user"]
            label = f"{sentence!r} paused {pause} s before {before_word!r}"
            assert len(users) == 1, f"{label}: the pause split the turn: {users}"
            assert expected <= words(users[0]), f"{label}: {users[0]!r}"
            assert not any(t < finished_at for t, _ in client.audio_arrivals), f"{label}: spoke in the pause"
            assert len(client.of_type("user-started-speaking")) == 1, label
            assert len(client.of_type("user-stopped-speaking")) == 1, label
            # The reply started at the pause was dropped when the user went on, and left no trace: no reply
            # message before the user finished, one user message and the one reply in the context.
            # (When Whisper finishes the first part only after the user went on, there was nothing to start.)
            inputs = bot.turns[n].llm_inputs
            assert inputs[-2:] == ["start", "confirm"], f"{label}: {inputs}"
            assert all(b == "drop" for a, b in zip(inputs[:-2], inputs[1:-1], strict=True) if a == "start"), (
                inputs
            )
            assert early == [], f"{label}: the abandoned reply leaked: {early}"
            roles = [m["role"] for m in context.messages]
            assert roles.count("assistant") <= 1 and roles.index("user") == 1, context.messages


@pytest.mark.parametrize("case", PIPER_PAUSED)
async def test_thinking_pauses_stay_inside_one_turn_in_a_natural_voice(speech_workers, case) -> None:
    before, pause, after, expected = case
    bot = ObservedBot()
    async with running_server(ServerConfig(bot=bot)) as (base, _app):
        for n in (0,):
            first, rest = (
                trimmed(await spoken(before, engine="piper")),
                trimmed(await spoken(after, engine="piper")),
            )
            async with RTVIClient(await start_websocket_session(base)) as client:
                await client.ready()
                await client.stream_audio(silence(0.3) + first + silence(pause) + rest)
                finished_at = time.monotonic()
                talking = asyncio.create_task(client.stream_audio(silence(3.0)))  # the microphone stays open
                await client.wait_for("user-stopped-speaking", timeout=30)
                await client.wait_for("bot-started-speaking", timeout=30)
                await talking
            users = [m["content"] for m in bot.contexts[n].messages if m["role"] == "user"]
            label = f"{before!r} (pause {pause} s) {after!r}"
            assert len(users) == 1, f"{label}: the pause split the turn: {users}"
            assert expected <= words(users[0]), f"{label}: {users[0]!r}"
            assert not any(t < finished_at for t, _ in client.audio_arrivals), f"{label}: spoke in the pause"
            assert len(client.of_type("user-started-speaking")) == 1, label


FINISHED = [
    ("What is the weather like in Paris today?", "piper"),
    ("Can you tell me a joke about computers?", "piper"),
    ("Can you tell me a joke about computers?", "espeak"),
]


async def test_a_finished_question_ends_the_turn_promptly(speech_workers) -> None:
    bot = ObservedBot()
    async with running_server(ServerConfig(bot=bot)) as (base, _app):
        for n, (text, engine) in enumerate(FINISHED):
            question = await spoken(text, engine=engine)
            async with RTVIClient(await start_websocket_session(base)) as client:
                await client.ready()
                await client.stream_audio(silence(0.3) + question)
                talking = asyncio.create_task(client.stream_audio(silence(2.5)))  # the microphone stays open
                await client.wait_for("user-stopped-speaking", timeout=30)
                await talking
                await client.wait_for("bot-started-speaking", timeout=30)
            users = [m["content"] for m in bot.contexts[n].messages if m["role"] == "user"]
            assert len(users) == 1 and words(text.lower()) & words(users[0]), users
            # The turn ended on the detector's "done" (the VAD's 0.2 s plus Whisper's time), not at the
            # silence limit; timed on the server, so a loaded machine's slower Whisper does not count.
            assert bot.turns[n].ended_before_the_silence_limit(), (
                f"{text!r} ({engine}) waited for the silence limit: {bot.turns[n].timing()}"
            )
            # The reply was started speculatively at the pause and confirmed, not run again.
            assert bot.turns[n].llm_inputs[-2:] == ["start", "confirm"], bot.turns[n].llm_inputs


@pytest.mark.timeout(600)
@pytest.mark.parametrize("voice", PAUSE_VOICES)
async def test_every_sentence_of_the_pause_set_stays_one_turn(speech_workers, voice: str) -> None:
    """The benchmark's pause set (``voxloop.testing.speech.PAUSE_SET``), whole sentences said by ``voice``
    with a 0.6-1.2 s pause after "for", "and", "um", "to", "the", "about"...: none may end the turn early."""
    bot = ObservedBot()
    cut_off: list[str] = []
    async with running_server(ServerConfig(bot=bot)) as (base, _app):
        for n, (sentence, before_word, pause) in enumerate(PAUSE_SET):
            pcm = await spoken_with_pause(sentence, before_word, pause, engine=voice)
            async with RTVIClient(await start_websocket_session(base)) as client:
                await client.ready()
                await client.stream_audio(silence(0.3) + pcm)
                finished_at = time.monotonic()
                talking = asyncio.create_task(client.stream_audio(silence(3.0)))  # the microphone stays open
                await client.wait_for("user-stopped-speaking", timeout=30)
                await talking
                await client.wait_for("bot-started-speaking", timeout=30)
            users = [m["content"] for m in bot.contexts[n].messages if m["role"] == "user"]
            spoke_early = any(t < finished_at for t, _ in client.audio_arrivals)
            if len(users) != 1 or spoke_early or len(client.of_type("user-stopped-speaking")) != 1:
                cut_off.append(
                    f"{sentence!r} paused {pause} s before {before_word!r}: {users} ({bot.turns[n].timing()})"
                )
    assert cut_off == [], f"{voice}: {len(cut_off)} of {len(PAUSE_SET)} cut off: {cut_off}"
