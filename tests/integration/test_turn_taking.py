"""Turn-taking of the default bot, end to end over the real WebSocket wire, every model real.

Utterances with a thinking pause in the middle (600-1200 ms after "for", "and", "um", "the": the
espeak-ng voice, a fragment then silence then the rest) must stay one turn: one user message with every
word, one ``user-started-speaking`` / ``user-stopped-speaking`` pair, and no bot audio before the user
has finished. A finished question must end the turn promptly, well before the 2 s silence limit.
"""

from __future__ import annotations

import asyncio
import re
import time

import pytest

from helpers.bots import ContextKeepingBot
from helpers.server import running_server, start_websocket_session
from helpers.speech import silence, spoken, spoken_with_pause
from voxloop.bots import SessionInfo
from voxloop.context import LLMUserAggregator
from voxloop.frames import TranscriptionFinishedFrame, UserStoppedSpeakingFrame
from voxloop.pipeline import BaseObserver, FramePushed, PipelineTask
from voxloop.server import ServerConfig
from voxloop.testing.rtvi_client import RTVIClient
from voxloop.transports import Transport

pytestmark = pytest.mark.timeout(150)

# Piper, a natural voice, with no word timings: the words before the pause are synthesised alone.
PIPER_PAUSED = [
    ("I'd like to book a table for", 0.9, "four people tonight.", {"table", "people"}),
    ("Can you tell me about", 1.1, "the weather in Paris?", {"tell", "paris"}),
]

PAUSED = [
    # (the sentence, the word the pause comes before, the pause in seconds, words the user message holds)
    ("Turn off the lights and close the blinds.", "close", 1.2, {"lights", "blinds"}),
    ("I'd like, um, a cup of coffee please.", "a cup", 0.8, {"like", "coffee"}),
    ("I want to know about the weather in Paris.", "the weather", 1.0, {"know", "paris"}),
    ("Please remind me to call the doctor tomorrow.", "call", 0.6, {"remind", "doctor"}),
]


@pytest.fixture(autouse=True)
def offline(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    monkeypatch.delenv("OPENAI_BASE_URL", raising=False)
    monkeypatch.setenv("VOXLOOP_TTS", "espeak")


class TurnEnds(BaseObserver):
    """Pipeline-clock times (ns) of the STT's finished segments and of the turn ends, at the user aggregator."""

    def __init__(self) -> None:
        self.words_in: list[int] = []
        self.turn_ends: list[int] = []

    async def on_push_frame(self, data: FramePushed) -> None:
        if isinstance(data.destination, LLMUserAggregator) and isinstance(
            data.frame, TranscriptionFinishedFrame
        ):
            self.words_in.append(data.timestamp)
        elif isinstance(data.source, LLMUserAggregator) and isinstance(data.frame, UserStoppedSpeakingFrame):
            self.turn_ends.append(data.timestamp)

    def ended_on_the_words(self) -> bool:
        """The turn ended as the last words came in (the detector said "done"), not at the silence limit."""
        last_words = max(t for t in self.words_in if t <= self.turn_ends[0])
        return self.turn_ends[0] - last_words < 0.25e9


class ObservedBot(ContextKeepingBot):
    def __init__(self) -> None:
        super().__init__("default")
        self.turns: list[TurnEnds] = []

    def __call__(self, transport: Transport, session: SessionInfo) -> PipelineTask:
        task = super().__call__(transport, session)
        self.turns.append(TurnEnds())
        task.add_observer(self.turns[-1])
        return task


def words(text: str) -> set[str]:
    return set(re.findall(r"[a-z0-9']+", text.lower()))


async def test_thinking_pauses_stay_inside_one_turn(speech_workers) -> None:
    bot = ObservedBot()
    async with running_server(ServerConfig(bot=bot)) as (base, _app):
        for n, (sentence, before_word, pause, expected) in enumerate(PAUSED):
            pcm = await spoken_with_pause(sentence, before_word, pause)
            async with RTVIClient(await start_websocket_session(base)) as client:
                await client.ready()
                await client.stream_audio(silence(0.3) + pcm)
                finished_at = time.monotonic()
                await client.wait_for("user-stopped-speaking", timeout=20)
                await client.wait_for("bot-started-speaking", timeout=20)
            context = bot.contexts[n]
            users = [m["content"] for m in context.messages if m["role"] == "user"]
            label = f"{sentence!r} paused {pause} s before {before_word!r}"
            assert len(users) == 1, f"{label}: the pause split the turn: {users}"
            assert expected <= words(users[0]), f"{label}: {users[0]!r}"
            assert not any(t < finished_at for t, _ in client.audio_arrivals), f"{label}: spoke in the pause"
            assert len(client.of_type("user-started-speaking")) == 1, label
            assert len(client.of_type("user-stopped-speaking")) == 1, label


async def test_thinking_pauses_stay_inside_one_turn_in_a_natural_voice(speech_workers) -> None:
    bot = ObservedBot()
    async with running_server(ServerConfig(bot=bot)) as (base, _app):
        for n, (before, pause, after, expected) in enumerate(PIPER_PAUSED):
            first, rest = await spoken(before, engine="piper"), await spoken(after, engine="piper")
            async with RTVIClient(await start_websocket_session(base)) as client:
                await client.ready()
                await client.stream_audio(silence(0.3) + first + silence(pause) + rest)
                finished_at = time.monotonic()
                await client.wait_for("user-stopped-speaking", timeout=20)
                await client.wait_for("bot-started-speaking", timeout=20)
            users = [m["content"] for m in bot.contexts[n].messages if m["role"] == "user"]
            label = f"{before!r} (pause {pause} s) {after!r}"
            assert len(users) == 1, f"{label}: the pause split the turn: {users}"
            assert expected <= words(users[0]), f"{label}: {users[0]!r}"
            assert not any(t < finished_at for t, _ in client.audio_arrivals), f"{label}: spoke in the pause"
            assert len(client.of_type("user-started-speaking")) == 1, label


FINISHED = [
    ("What is the weather like in Paris today?", "piper"),
    ("Can you tell me a joke about computers?", "piper"),
    ("What time is it?", "espeak"),
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
                await client.wait_for("user-stopped-speaking", timeout=20)
                await talking
                await client.wait_for("bot-started-speaking", timeout=20)
            users = [m["content"] for m in bot.contexts[n].messages if m["role"] == "user"]
            assert len(users) == 1 and words(text.lower()) & words(users[0]), users
            # The turn ended as the words came in (the VAD's 0.2 s plus Whisper's time), not after 2 s of
            # silence; the time is measured on the server, so a loaded machine's slower Whisper does not count.
            assert bot.turns[n].ended_on_the_words(), f"{text!r} ({engine}) waited for the silence limit"
