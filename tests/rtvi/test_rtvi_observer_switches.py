"""Each RTVIObserverParams switch turns off exactly its messages (and nothing else), the audio-level
period is honoured, and the processor's on_bot_started fires once, when the pipeline starts."""

from __future__ import annotations

from helpers.rtvi import RTVISession
from voxloop.frames import (
    AggregatedTextFrame,
    AggregationType,
    BotStartedSpeakingFrame,
    BotStoppedSpeakingFrame,
    InputAudioRawFrame,
    InterruptionFrame,
    MetricsFrame,
    TTFBMetricsData,
    TTSTextFrame,
)
from voxloop.pipeline import FrameProcessor
from voxloop.rtvi import RTVIObserverParams, RTVIProcessor
from voxloop.testing import FakeClock


def session(params: RTVIObserverParams) -> RTVISession:
    return RTVISession(
        RTVIProcessor(observer_params=params, client_ready_timeout_secs=None), FrameProcessor()
    )


def said(text: str) -> TTSTextFrame:
    frame = TTSTextFrame(text, aggregated_by=AggregationType.SENTENCE)
    frame.will_be_spoken = True
    return frame


async def speak_and_measure(s: RTVISession) -> None:
    await s.ready()
    await s.harness.push(BotStartedSpeakingFrame(), said("Hi."))
    await s.harness.down_recorder.wait_for(AggregatedTextFrame)
    await s.harness.push(BotStoppedSpeakingFrame(), InterruptionFrame())
    await s.harness.push(MetricsFrame(data=[TTFBMetricsData("llm", value=0.1)]))
    await s.harness.end()


def types(s: RTVISession) -> list[str]:
    return [m["type"] for m in s.messages if m["type"] != "bot-ready"]


ALL = [
    "bot-started-speaking",
    "bot-tts-text",
    "bot-output",
    "bot-stopped-speaking",
    "bot-interrupted",
    "metrics",
]


async def test_everything_is_reported_by_default() -> None:
    async with session(RTVIObserverParams()) as s:
        await speak_and_measure(s)
    assert types(s) == ALL


async def test_bot_speaking_off_silences_only_the_speaking_events() -> None:
    async with session(RTVIObserverParams(bot_speaking_enabled=False)) as s:
        await speak_and_measure(s)
    assert types(s) == ["bot-tts-text", "bot-output", "metrics"]  # the text is still released


async def test_metrics_off() -> None:
    async with session(RTVIObserverParams(metrics_enabled=False)) as s:
        await speak_and_measure(s)
    assert types(s) == [t for t in ALL if t != "metrics"]


async def test_bot_output_off_keeps_the_tts_text() -> None:
    async with session(RTVIObserverParams(bot_output_enabled=False)) as s:
        await speak_and_measure(s)
    assert types(s) == [t for t in ALL if t != "bot-output"]


async def test_a_longer_audio_level_period_sends_fewer_levels() -> None:
    clock = FakeClock()
    params = RTVIObserverParams(user_audio_level_enabled=True, audio_level_period_secs=0.5)
    rtvi = RTVIProcessor(observer_params=params, client_ready_timeout_secs=None)
    loud = b"\x00\x40" * 160
    async with RTVISession(rtvi, clock=clock) as s:
        for _ in range(6):  # one frame every 0.2 s over 1.2 s
            await clock.advance(0.2)
            await s.harness.push(InputAudioRawFrame(loud, 16000, 1))
            await s.harness.down_recorder.wait_for(InputAudioRawFrame, count=_ + 1)
        await s.harness.end()
    # At 0.2 s, then not before 0.7 s (at 0.8 s), then not before 1.3 s: two, where 0.15 s gives six.
    assert len(s.of_type("user-audio-level")) == 2


async def test_on_bot_started_fires_once_when_the_pipeline_starts() -> None:
    started: list[bool] = []
    rtvi = RTVIProcessor(client_ready_timeout_secs=None)
    rtvi.add_event_handler("on_bot_started", lambda p: started.append(True))
    assert started == []
    async with RTVISession(rtvi) as s:
        await s.ready()
        assert started == [True]
        await s.ready()
    assert started == [True]
