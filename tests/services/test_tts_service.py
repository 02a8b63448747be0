"""TTSService with a fake engine: frame order, word timings, interruption, skip_tts, settings, metrics."""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncGenerator
from typing import Any

import pytest

from helpers.gate import Gate
from voxloop.context import LLMAssistantAggregator, LLMContext
from voxloop.frames import (
    AggregatedTextFrame,
    AggregatedTextProgressFrame,
    AggregationType,
    ErrorFrame,
    Frame,
    InterruptionFrame,
    LLMFullResponseEndFrame,
    LLMFullResponseStartFrame,
    LLMTextFrame,
    MetricsFrame,
    TTFBMetricsData,
    TTSAudioRawFrame,
    TTSSpeakFrame,
    TTSStartedFrame,
    TTSStoppedFrame,
    TTSTextFrame,
    TTSUpdateSettingsFrame,
    TTSUsageMetricsData,
)
from voxloop.pipeline import Pipeline, PipelineParams
from voxloop.services import TTSOutput, TTSService, WordTiming
from voxloop.testing import FakeClock, MemoryTransport, PipelineHarness, run_test
from voxloop.transports.params import TransportParams

RATE = 16000
SAMPLES_PER_CHAR = 160  # 10 ms of audio per character


class FakeTTS(TTSService):
    """10 ms of audio per character, in 50 ms chunks; word timings at each word's first character."""

    def __init__(
        self,
        *,
        words: bool = False,
        fail_on: str | None = None,
        fail_midway: str | None = None,
        first_clause_words: int = 3,
    ) -> None:
        super().__init__(sample_rate=RATE, settings={"voice": "a"}, first_clause_words=first_clause_words)
        self.words = words
        self.fail_on = fail_on
        self.fail_midway = fail_midway
        self.requests: list[str] = []
        self.voices: list[str] = []
        self.finished: list[str] = []

    async def run_tts(self, text: str) -> AsyncGenerator[TTSOutput, None]:
        self.requests.append(text)
        self.voices.append(self.settings["voice"])
        if self.fail_on and self.fail_on in text:
            raise RuntimeError("engine exploded")
        if self.words:
            for match in re.finditer(r"\S+", text):
                yield WordTiming(match.start() * SAMPLES_PER_CHAR, match.start(), match.end())
        audio = b"\x01\x00" * (len(text) * SAMPLES_PER_CHAR)
        for start in range(0, len(audio), 1600):
            await asyncio.sleep(0)
            yield audio[start : start + 1600]
            if self.fail_midway and self.fail_midway in text:
                raise RuntimeError("engine died mid-sentence")
        self.finished.append(text)


def kinds(frames: list[Frame]) -> list[str]:
    """Frame type names with runs of audio collapsed to one 'audio'."""
    out: list[str] = []
    for frame in frames:
        name = "audio" if isinstance(frame, TTSAudioRawFrame) else type(frame).__name__
        if not (name == "audio" and out and out[-1] == "audio"):
            out.append(name)
    return out


def response(*pieces: str) -> list[Frame]:
    return [LLMFullResponseStartFrame(), *(LLMTextFrame(p) for p in pieces), LLMFullResponseEndFrame()]


async def test_streamed_response_frame_order() -> None:
    tts = FakeTTS()
    down, up = await run_test(tts, response("Hello there. How", " are you? Fi", "ne"))
    assert kinds(down) == [
        "LLMFullResponseStartFrame",
        "TTSStartedFrame",
        "AggregatedTextFrame", "audio", "TTSTextFrame",
        "AggregatedTextFrame", "audio", "TTSTextFrame",
        "AggregatedTextFrame", "audio", "TTSTextFrame",
        "TTSStoppedFrame",
        "LLMFullResponseEndFrame",
    ]  # fmt: skip
    assert up == []
    assert tts.requests == ["Hello there.", "How are you?", "Fine"]
    announced = [f for f in down if type(f) is AggregatedTextFrame]
    assert [f.text for f in announced] == tts.requests
    assert all(f.will_be_spoken and f.aggregated_by == AggregationType.SENTENCE for f in announced)
    spoken = [f for f in down if isinstance(f, TTSTextFrame)]
    assert [f.text for f in spoken] == tts.requests
    audio = [f for f in down if isinstance(f, TTSAudioRawFrame)]
    assert sum(f.num_frames for f in audio) == len("Hello there.How are you?Fine") * SAMPLES_PER_CHAR
    assert {f.sample_rate for f in audio} == {RATE} and {f.num_channels for f in audio} == {1}
    started = next(f for f in down if isinstance(f, TTSStartedFrame))
    stopped = next(f for f in down if isinstance(f, TTSStoppedFrame))
    assert started.context_id and started.context_id == stopped.context_id
    assert {f.context_id for f in audio} == {started.context_id}


async def test_first_sentence_is_spoken_while_the_llm_still_streams() -> None:
    tts = FakeTTS()
    async with PipelineHarness(tts) as h:
        await h.push(LLMFullResponseStartFrame(), LLMTextFrame("First sentence. Sec"))
        spoken = await h.down_recorder.wait_for(TTSTextFrame)
        assert spoken.text == "First sentence."
        assert not h.down_recorder.of_type(TTSStoppedFrame)
        await h.push(LLMTextFrame("ond one."), LLMFullResponseEndFrame())
        await h.down_recorder.wait_for(LLMFullResponseEndFrame)
    assert tts.requests == ["First sentence.", "Second one."]


async def test_the_first_clause_is_spoken_before_the_llm_ends_its_sentence() -> None:
    tts = FakeTTS()
    async with PipelineHarness(tts) as h:
        await h.push(LLMFullResponseStartFrame(), LLMTextFrame("Well, the bus leaves at noon, so hu"))
        spoken = await h.down_recorder.wait_for(TTSTextFrame)
        assert spoken.text == "Well, the bus leaves at noon,"
        await h.push(LLMTextFrame("rry. Then, later, eat."), LLMFullResponseEndFrame())
        await h.push(*response("Again, and again, no."), TTSSpeakFrame("Hello there, my friend. Bye"))
        await h.down_recorder.wait_for(TTSStoppedFrame, count=3)
    # The first chunk of each reply (and of a speak frame) is a clause; the others are sentences.
    assert tts.requests == [
        "Well, the bus leaves at noon,", "so hurry.", "Then, later, eat.",
        "Again, and again,", "no.",
        "Hello there, my friend.", "Bye",
    ]  # fmt: skip
    spoken_texts = [f.text for f in h.down if isinstance(f, TTSTextFrame)]
    assert spoken_texts == tts.requests


async def test_first_clause_off_speaks_whole_sentences() -> None:
    tts = FakeTTS(first_clause_words=0)
    await run_test(tts, response("Well, the bus leaves at noon, so hurry. Ok"))
    assert tts.requests == ["Well, the bus leaves at noon, so hurry.", "Ok"]


async def test_word_timings_put_word_frames_inside_the_audio() -> None:
    tts = FakeTTS(words=True)
    down, _ = await run_test(tts, response("Hi big world. Bye now."))
    words = [f for f in down if isinstance(f, TTSTextFrame)]
    assert [w.text for w in words] == ["Hi", "big", "world.", "Bye", "now."]
    assert all(w.aggregated_by == AggregationType.WORD for w in words)
    # Each word comes after exactly the audio that precedes its start.
    samples = 0
    sentence_start = 0
    for frame in down:
        if type(frame) is AggregatedTextFrame:
            sentence_start = samples
            sentence = frame.text
        if isinstance(frame, TTSAudioRawFrame):
            samples += frame.num_frames
        if isinstance(frame, TTSTextFrame):
            offset = sentence.index(frame.text)
            assert samples - sentence_start == offset * SAMPLES_PER_CHAR, frame.text
    # Audio continues after the words: the words are interleaved, not appended.
    first_word = down.index(words[0])
    assert any(isinstance(f, TTSAudioRawFrame) for f in down[first_word:])
    progress = [f for f in down if isinstance(f, AggregatedTextProgressFrame)]
    assert [(p.text, p.accumulated_text, p.remaining_text) for p in progress[:3]] == [
        ("Hi", "Hi", "big world."),
        ("big", "Hi big", "world."),
        ("world.", "Hi big world.", ""),
    ]
    announce = [f for f in down if type(f) is AggregatedTextFrame]
    assert {p.segment_id for p in progress[:3]} == {announce[0].id}
    assert kinds(down)[-2:] == ["TTSStoppedFrame", "LLMFullResponseEndFrame"]


async def test_interruption_drops_the_response_and_clears_the_buffer(no_leaked_tasks) -> None:
    tts = FakeTTS()
    gate = Gate(TTSAudioRawFrame, queued=False)  # a slow downstream: holds the TTS at its first audio
    async with PipelineHarness(Pipeline([tts, gate])) as h:
        await h.push(LLMFullResponseStartFrame(), LLMTextFrame("Long first sentence here. Second one"))
        await asyncio.wait_for(gate.holding.wait(), 5)
        await h.push(InterruptionFrame())
        await h.down_recorder.wait_for(InterruptionFrame)
        gate.opened.set()
        await h.push(*response("Fresh start."))
        await h.down_recorder.wait_for(LLMFullResponseEndFrame)
    assert tts.finished == ["Fresh start."]  # the interrupted sentence never finished; "Second one" dropped
    assert tts.requests == ["Long first sentence here.", "Fresh start."]
    after = h.down[h.down.index(h.down_recorder.of_type(InterruptionFrame)[0]) :]
    assert [f.text for f in after if isinstance(f, TTSTextFrame)] == ["Fresh start."]
    assert kinds(after)[-3:] == ["TTSStoppedFrame", "LLMFullResponseEndFrame", "EndFrame"]
    assert sum(isinstance(f, TTSStartedFrame) for f in after) == 1


async def test_skip_tts_text_is_forwarded_unspoken() -> None:
    tts = FakeTTS()
    skipped = LLMTextFrame("Not spoken. ")
    skipped.skip_tts = True
    start = LLMFullResponseStartFrame()
    start.skip_tts = True
    down, _ = await run_test(
        tts,
        [LLMFullResponseStartFrame(), skipped, LLMTextFrame("Spoken."), LLMFullResponseEndFrame(), start,
         LLMTextFrame("Also not."), LLMFullResponseEndFrame()],
    )  # fmt: skip
    assert tts.requests == ["Spoken."]
    assert skipped in down
    assert [f.text for f in down if type(f) is LLMTextFrame] == ["Not spoken. ", "Also not."]


async def test_speak_frame_is_wrapped_in_started_and_stopped() -> None:
    tts = FakeTTS()
    down, _ = await run_test(tts, [TTSSpeakFrame("Welcome! Ask me anything")])
    assert kinds(down) == [
        "TTSStartedFrame",
        "AggregatedTextFrame", "audio", "TTSTextFrame",
        "AggregatedTextFrame", "audio", "TTSTextFrame",
        "TTSStoppedFrame",
    ]  # fmt: skip
    assert tts.requests == ["Welcome!", "Ask me anything"]
    assert all(f.append_to_context for f in down if isinstance(f, TTSTextFrame))


async def test_speak_frame_can_stay_out_of_the_context() -> None:
    down, _ = await run_test(FakeTTS(words=True), [TTSSpeakFrame("Just a notice.", append_to_context=False)])
    words = [f for f in down if isinstance(f, TTSTextFrame)]
    assert [w.text for w in words] == ["Just", "a", "notice."]
    assert not any(w.append_to_context for w in words)


async def test_update_settings_applies_to_later_sentences() -> None:
    tts = FakeTTS()
    other = FakeTTS()
    await run_test(
        tts,
        [TTSSpeakFrame("One."), TTSUpdateSettingsFrame(settings={"voice": "b"}), TTSSpeakFrame("Two."),
         TTSUpdateSettingsFrame(settings={"voice": "c"}, service=other), TTSSpeakFrame("Three.")],
    )  # fmt: skip
    assert tts.voices == ["a", "b", "b"]


async def test_engine_error_is_reported_and_the_response_goes_on() -> None:
    tts = FakeTTS(fail_on="bad")
    down, up = await run_test(tts, response("A bad one. A good one."))
    assert [type(f) for f in up] == [ErrorFrame]
    assert "engine exploded" in up[0].error
    assert [f.text for f in down if isinstance(f, TTSTextFrame)] == ["A good one."]  # never claims unspoken
    assert kinds(down)[-2:] == ["TTSStoppedFrame", "LLMFullResponseEndFrame"]


async def test_an_engine_dying_mid_sentence_releases_only_the_words_whose_audio_went_out() -> None:
    tts = FakeTTS(words=True, fail_midway="world")
    down, up = await run_test(tts, response("Hello big wide world."))
    assert [type(f) for f in up] == [ErrorFrame]
    audio = sum(len(f.audio) for f in down if isinstance(f, TTSAudioRawFrame)) // 2
    spoken = [f.text for f in down if isinstance(f, TTSTextFrame)]
    # Only the first 50 ms chunk was made: the words that start inside it, not the rest of the sentence.
    assert audio == 800 and spoken == ["Hello"]


async def test_metrics_ttfb_per_sentence_and_characters() -> None:
    tts = FakeTTS()
    params = PipelineParams(enable_metrics=True, enable_usage_metrics=True)
    down, _ = await run_test(tts, response("One two. Three."), params=params)
    data = [d for f in down if isinstance(f, MetricsFrame) for d in f.data]
    ttfb = [d for d in data if isinstance(d, TTFBMetricsData) and d.value > 0]
    usage = [d.value for d in data if isinstance(d, TTSUsageMetricsData)]
    assert len(ttfb) == 2
    assert usage == [len("One two."), len("Three.")]


async def test_speaks_text_for_rtvi() -> None:
    assert TTSService.speaks_text is True
    assert FakeTTS().can_generate_metrics()


class SignallingTTS(FakeTTS):
    """A FakeTTS that says when it has made the audio of the chunk ending with ``last``."""

    def __init__(self, last: str, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.last = last
        self.all_made = asyncio.Event()

    async def run_tts(self, text: str) -> AsyncGenerator[TTSOutput, None]:
        async for item in super().run_tts(text):
            yield item
        if text.endswith(self.last):
            self.all_made.set()


@pytest.mark.parametrize(
    ("words", "heard"),
    [
        # Chunk texts follow their audio: the first clause was played, the second chunk was not finished.
        (False, "Well, the bus leaves at noon,"),
        # Word timings: the words whose audio went out, across the clause cut.
        (True, "Well, the bus leaves at noon, so hurry"),
    ],
)
async def test_interrupted_clause_chunks_leave_exactly_what_was_heard_in_the_context(
    no_leaked_tasks: None, words: bool, heard: str
) -> None:
    clock = FakeClock()
    tts = SignallingTTS(last="Then eat.", words=words)
    output = MemoryTransport(TransportParams(audio_out_chunk_ms=20, audio_out_lead_ms=0)).output()
    context = LLMContext([{"role": "user", "content": "when?"}])
    async with PipelineHarness(Pipeline([tts, output, LLMAssistantAggregator(context)]), clock=clock) as h:
        await h.push(*response("Well, the bus leaves at", " noon, so hurry up. Then eat."))
        await asyncio.wait_for(tts.all_made.wait(), 5)
        # 10 ms per character: the first chunk plays for 290 ms, "so" starts at 290, "hurry" at 320 and
        # "up." at 380 ms.
        await clock.advance(0.335)
        await h.push(InterruptionFrame())
        await h.down_recorder.wait_for(InterruptionFrame)
        await clock.advance(2.0)
    assert context.messages[-1] == {"role": "assistant", "content": heard}
    assert tts.requests == ["Well, the bus leaves at noon,", "so hurry up.", "Then eat."]
