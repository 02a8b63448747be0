"""The turn observer's bookkeeping, driven frame by frame at chosen times (pipeline-clock seconds).

The conversation tests check the real pipeline; these pin down the cases that are hard to provoke there
on purpose: a barge-in, noise over the bot, a transcript that comes after the turn gave up on it, and
the observer dismissing the frames it does not watch. Spans go to the SDK's in-memory exporter.
"""

from __future__ import annotations

from typing import Any

import pytest
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from prometheus_client import CollectorRegistry

from voxloop.frames import (
    AssistantTurnStoppedFrame,
    BotStartedSpeakingFrame,
    BotStoppedSpeakingFrame,
    Frame,
    InputAudioRawFrame,
    InterruptionFrame,
    LLMFullResponseEndFrame,
    LLMFullResponseStartFrame,
    LLMTextFrame,
    TextFrame,
    TranscriptionFinishedFrame,
    TranscriptionFrame,
    TTSAudioRawFrame,
    TTSStartedFrame,
    TTSStoppedFrame,
    UserStartedSpeakingFrame,
    UserStoppedSpeakingFrame,
    VADUserStartedSpeakingFrame,
    VADUserStoppedSpeakingFrame,
)
from voxloop.pipeline import FrameDirection, FrameProcessor, FramePushed
from voxloop.services import TTSService
from voxloop.services.local import DemoAgentLLM
from voxloop.telemetry import SessionTelemetry, Telemetry, TurnObserver
from voxloop.telemetry.metrics import ServerMetrics
from voxloop.testing import PipelineHarness

S = 1_000_000_000


class Conversation:
    """Feeds frames to a session's observer as their producers would push them."""

    def __init__(self) -> None:
        self.exporter = InMemorySpanExporter()
        provider = TracerProvider()
        provider.add_span_processor(SimpleSpanProcessor(self.exporter))
        self.registry = CollectorRegistry()
        self.telemetry = Telemetry(ServerMetrics(self.registry), provider.get_tracer("test"))
        self.session: SessionTelemetry = self.telemetry.session("s1", "websocket")
        self.session.started()
        self.llm = DemoAgentLLM()
        self.tts = TTSService()
        self.other = FrameProcessor(name="other")

    async def at(self, seconds: float, frame: Frame, source: Any = None) -> None:
        source = source or self.other
        push = FramePushed(source, self.other, frame, FrameDirection.DOWNSTREAM, int(seconds * S))
        await self.session.observer.on_push_frame(push)

    async def user_says(self, start: float, end: float, words: str, *, turn: bool = True) -> None:
        """Speech from ``start`` to ``end``: VAD at +0.2 s / +0.3 s, the transcript 0.2 s after the stop."""
        await self.at(start + 0.2, VADUserStartedSpeakingFrame(start_secs=0.2))
        if turn:
            await self.at(start + 0.2, UserStartedSpeakingFrame())
        await self.at(end + 0.3, VADUserStoppedSpeakingFrame(stop_secs=0.3))
        await self.at(end + 0.5, TranscriptionFrame(words))
        await self.at(end + 0.5, TranscriptionFinishedFrame())

    async def bot_answers(self, at: float, text: str) -> None:
        """The LLM's first word 50 ms after ``at``, the first audio 150 ms later, playing 100 ms later."""
        await self.at(at, LLMFullResponseStartFrame(), self.llm)
        await self.at(at + 0.05, LLMTextFrame(text), self.llm)
        await self.at(at + 0.06, LLMFullResponseEndFrame(), self.llm)
        await self.at(at + 0.07, TTSStartedFrame(), self.tts)
        await self.at(at + 0.2, TTSAudioRawFrame(b"\0\0" * 240, 24000, 1), self.tts)
        await self.at(at + 0.3, BotStartedSpeakingFrame())
        await self.at(at + 0.31, TTSStoppedFrame(), self.tts)

    def value(self, name: str, **labels: str) -> float:
        return self.registry.get_sample_value(name, labels) or 0.0

    def turns(self) -> list[dict[str, Any]]:
        spans = [s for s in self.exporter.get_finished_spans() if s.name == "voxloop.turn"]
        return [dict(s.attributes or {}) for s in spans]


@pytest.fixture
def talk() -> Conversation:
    return Conversation()


async def test_a_barge_in_ends_the_turn_as_interrupted_and_starts_the_next(talk: Conversation) -> None:
    await talk.user_says(0.0, 1.0, "Help.")
    await talk.at(1.7, UserStoppedSpeakingFrame())  # 0.7 s of silence after the last word
    await talk.bot_answers(1.7, "Here is what I can do")
    # 1.2 s into the reply the user talks over it; the turn is confirmed 0.3 s after the onset.
    await talk.at(3.2, VADUserStartedSpeakingFrame(start_secs=0.2))
    await talk.at(3.3, UserStartedSpeakingFrame())
    await talk.at(3.3, InterruptionFrame())
    await talk.at(3.31, BotStoppedSpeakingFrame())
    first = talk.turns()
    assert len(first) == 1
    (turn,) = first
    assert turn["voxloop.turn.interrupted"] is True
    assert turn["voxloop.turn.user_words"] == 1
    assert turn["voxloop.latency.voice_to_voice_ms"] == pytest.approx(1000.0)
    assert turn["voxloop.latency.turn_detection_ms"] == pytest.approx(700.0)
    assert turn["voxloop.latency.llm_ms"] == pytest.approx(50.0)
    assert turn["voxloop.latency.tts_ms"] == pytest.approx(150.0)
    assert turn["voxloop.latency.output_ms"] == pytest.approx(100.0)
    assert talk.value("voxloop_interruptions_total") == 1
    # The second turn began with the barge-in's first word, not when it was confirmed.
    current = talk.session.observer.turn
    assert current is not None and current.number == 2 and current.start_ns == 3 * S
    await talk.at(4.3, VADUserStoppedSpeakingFrame(stop_secs=0.3))
    await talk.at(4.7, UserStoppedSpeakingFrame())
    await talk.bot_answers(4.7, "It is noon")
    await talk.at(5.5, AssistantTurnStoppedFrame(text="It is noon"))
    await talk.at(5.6, BotStoppedSpeakingFrame())
    second = talk.turns()[1]
    assert second["voxloop.turn.interrupted"] is False
    assert second["voxloop.turn.bot_words"] == 3
    assert second["voxloop.latency.voice_to_voice_ms"] == pytest.approx(1000.0)
    assert talk.value("voxloop_interruptions_total") == 1
    assert talk.value("voxloop_turns_total") == 2
    assert talk.value("voxloop_voice_to_voice_seconds_count") == 2
    assert talk.value("voxloop_voice_to_voice_seconds_sum") == pytest.approx(2.0)


async def test_noise_over_the_reply_is_no_turn_and_not_in_the_next(talk: Conversation) -> None:
    await talk.user_says(0.0, 1.0, "Help.")
    await talk.at(1.7, UserStoppedSpeakingFrame())
    await talk.bot_answers(1.7, "Here is what I can do")
    await talk.user_says(2.5, 2.7, "uh", turn=False)  # a cough while the bot speaks: no turn
    await talk.at(4.0, AssistantTurnStoppedFrame(text="Here is what I can do"))
    await talk.at(4.5, BotStoppedSpeakingFrame())
    await talk.user_says(6.0, 7.0, "What time is it?")
    await talk.at(7.7, UserStoppedSpeakingFrame())
    first, *_ = talk.turns()
    assert first["voxloop.turn.interrupted"] is False and first["voxloop.turn.bot_words"] == 6
    current = talk.session.observer.turn
    assert current is not None and current.start_ns == 6 * S
    assert current.user_text == ["What time is it?"]
    assert talk.value("voxloop_interruptions_total") == 0


async def test_a_late_transcript_continues_the_turn_and_latency_counts_from_the_last_word(
    talk: Conversation,
) -> None:
    await talk.at(0.2, VADUserStartedSpeakingFrame(start_secs=0.2))
    await talk.at(0.2, UserStartedSpeakingFrame())
    await talk.at(1.3, VADUserStoppedSpeakingFrame(stop_secs=0.3))
    await talk.at(3.3, UserStoppedSpeakingFrame())  # gave up waiting for the transcript (2 s)
    await talk.at(3.5, TranscriptionFrame("What time is it?"))
    await talk.at(3.5, TranscriptionFinishedFrame())
    await talk.at(3.5, UserStartedSpeakingFrame())  # the late words restart the turn...
    await talk.at(3.5, UserStoppedSpeakingFrame())  # ...and end it at once
    await talk.bot_answers(3.5, "It is noon")
    await talk.at(4.5, AssistantTurnStoppedFrame(text="It is noon"))
    await talk.at(4.6, BotStoppedSpeakingFrame())
    (turn,) = talk.turns()
    assert turn["voxloop.turn.user_words"] == 4
    assert turn["voxloop.latency.voice_to_voice_ms"] == pytest.approx(2800.0)
    assert turn["voxloop.latency.turn_detection_ms"] == pytest.approx(2500.0)
    spans = [s for s in talk.exporter.get_finished_spans() if s.name == "voxloop.stt"]
    assert len(spans) == 1
    assert (spans[0].end_time - spans[0].start_time) / 1e6 == pytest.approx(2200.0)  # type: ignore[operator]
    assert talk.value("voxloop_stt_seconds_sum") == pytest.approx(2.2)


async def test_unwatched_frames_are_dismissed_and_nothing_is_counted_twice(talk: Conversation) -> None:
    audio = InputAudioRawFrame(b"\0\0" * 160, 16000, 1)
    for _ in range(3):
        await talk.at(0.1, audio)
    assert talk.session.observer.turn is None
    started = UserStartedSpeakingFrame()
    for hop in range(3):  # the same frame seen on three hops is one turn start
        await talk.at(0.2 + hop * 0.001, started)
    assert talk.session.observer.turn is not None and talk.session.observer.turn.number == 1
    talk.session.ended()
    assert talk.value("voxloop_sessions_ended_total", transport="websocket") == 1
    assert talk.value("voxloop_sessions_failed_total", transport="websocket", stage="run") == 0


class CountingTurnObserver(TurnObserver):
    def __init__(self, sink: SessionTelemetry) -> None:
        super().__init__(sink)
        self.shown: list[Frame] = []

    async def on_push_frame(self, data: FramePushed) -> None:
        self.shown.append(data.frame)
        await super().on_push_frame(data)


async def test_the_hub_never_shows_the_observer_audio_or_text_frames() -> None:
    """What keeps telemetry off the per-frame path: the chain's audio and text frames reach no observer."""
    telemetry = Telemetry(ServerMetrics(CollectorRegistry()))
    observer = CountingTurnObserver(telemetry.session("s1", "websocket"))
    async with PipelineHarness(FrameProcessor(name="hop"), observers=[observer]) as harness:
        for _ in range(200):
            await harness.push(InputAudioRawFrame(b"\0\0" * 160, 16000, 1), TextFrame("x"))
        await harness.push(UserStartedSpeakingFrame())
    assert sum(isinstance(f, InputAudioRawFrame | TextFrame) for f in harness.down) == 400  # all went through
    assert observer.shown and all(isinstance(f, UserStartedSpeakingFrame) for f in observer.shown)
    assert observer.turn is None  # the session's end closed the turn it opened
