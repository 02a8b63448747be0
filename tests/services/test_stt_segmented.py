"""SegmentedSTTService with a scripted recogniser: cutting, ordering, muting, errors, metrics."""

from __future__ import annotations

import asyncio
import re

import numpy as np
import pytest

from voxloop.frames import (
    EndFrame,
    ErrorFrame,
    Frame,
    InputAudioRawFrame,
    InterruptionFrame,
    MetricsFrame,
    ProcessingMetricsData,
    STTMuteFrame,
    STTUpdateSettingsFrame,
    STTUsageMetricsData,
    TextFrame,
    TranscriptionFinishedFrame,
    TranscriptionFrame,
    TTFBMetricsData,
    UserAudioRawFrame,
    VADSpeechEndingFrame,
    VADSpeechResumedFrame,
    VADUserStartedSpeakingFrame,
    VADUserStoppedSpeakingFrame,
)
from voxloop.pipeline import FrameDirection, PipelineParams
from voxloop.services import SegmentedSTTService, Transcript
from voxloop.testing import FakeClock, PipelineHarness

RATE = 16000
CHUNK = 320  # 20 ms


def chunk(value: int, samples: int = CHUNK) -> InputAudioRawFrame:
    """20 ms of a constant sample value: lets a test see exactly which audio a segment holds."""
    return InputAudioRawFrame(
        audio=np.full(samples, value, dtype="<i2").tobytes(), sample_rate=RATE, num_channels=1
    )


def values(pcm: bytes) -> list[int]:
    """The distinct chunk values in ``pcm``, in order."""
    samples = np.frombuffer(pcm, dtype="<i2")
    out: list[int] = []
    for s in samples[::CHUNK].tolist():
        if not out or out[-1] != s:
            out.append(s)
    return out


class ScriptedSTT(SegmentedSTTService):
    """Answers from a list; each answer can be held by a gate. Records the segments it was given."""

    def __init__(self, answers: list[str | Exception] | None = None, **kwargs: object) -> None:
        super().__init__(**kwargs)  # type: ignore[arg-type]
        self.answers = list(answers or [])
        self.segments: list[bytes] = []
        self.running = 0
        self.max_running = 0
        self.gate: asyncio.Event | None = None
        self.entered = asyncio.Event()
        self.end_arrived = asyncio.Event()

    async def process_frame(self, frame: Frame, direction: FrameDirection) -> None:
        if isinstance(frame, EndFrame):
            self.end_arrived.set()  # a waiter runs once the service has had its say on the frame
        await super().process_frame(frame, direction)

    async def transcribe(self, audio: bytes, sample_rate: int) -> Transcript:
        self.segments.append(audio)
        self.running += 1
        self.max_running = max(self.max_running, self.running)
        self.entered.set()
        try:
            if self.gate is not None:
                await self.gate.wait()
            answer = self.answers.pop(0) if self.answers else ""
            if isinstance(answer, Exception):
                raise answer
            return Transcript(answer)
        finally:
            self.running -= 1


async def speak(h: PipelineHarness, first: int, count: int, *, start_secs: float = 0.2) -> None:
    """Push a VAD start, ``count`` chunks valued first, first+1, ... and a VAD stop."""
    await h.push(VADUserStartedSpeakingFrame(start_secs=start_secs))
    await h.push(*(chunk(first + i) for i in range(count)))
    await h.push(VADUserStoppedSpeakingFrame(stop_secs=0.3))


def kinds(frames: list[Frame]) -> list[str]:
    return [type(f).__name__ for f in frames if not isinstance(f, InputAudioRawFrame | MetricsFrame)]


async def test_forwards_everything_and_transcribes_a_segment(no_leaked_tasks: None) -> None:
    stt = ScriptedSTT(["Hello there."], user_id="u1")
    async with PipelineHarness(stt) as h:
        await h.push(*(chunk(1) for _ in range(10)))
        await speak(h, 100, 20)
        await h.push(TextFrame("other"))
        await h.down_recorder.wait_for(TranscriptionFinishedFrame)
        await h.push_up(TextFrame("up"))
        await h.up_recorder.wait_for(TextFrame)
    audio = [f for f in h.down if isinstance(f, InputAudioRawFrame)]
    assert len(audio) == 30
    order = kinds(h.down)
    assert order[:2] == ["VADUserStartedSpeakingFrame", "VADUserStoppedSpeakingFrame"]
    assert order.index("TranscriptionFrame") < order.index("TranscriptionFinishedFrame")
    transcription = h.down_recorder.of_type(TranscriptionFrame)[0]
    assert transcription.text == "Hello there."
    assert transcription.user_id == "u1"
    assert transcription.finalized is True
    assert transcription.language == "en"
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", transcription.timestamp)
    assert h.down_recorder.of_type(TranscriptionFinishedFrame)[0].text == "Hello there."
    assert [f.text for f in h.up if isinstance(f, TextFrame)] == ["up"]


async def test_segment_starts_with_pre_roll_before_the_vad_decision() -> None:
    # 0.2 s (VAD start_secs) + 0.5 s pre-roll = 0.7 s = 35 chunks before the start event are kept.
    stt = ScriptedSTT(["x"])
    async with PipelineHarness(stt) as h:
        await h.push(*(chunk(i) for i in range(1, 41)))  # values 1..40, 0.8 s
        await speak(h, 100, 5, start_secs=0.2)
        await h.down_recorder.wait_for(TranscriptionFinishedFrame)
    assert values(stt.segments[0]) == [*range(6, 41), *range(100, 105)]


async def test_pre_roll_follows_the_vad_start_secs_and_pre_roll_setting() -> None:
    stt = ScriptedSTT(["x"], pre_roll_secs=0.0)
    async with PipelineHarness(stt) as h:
        await h.push(*(chunk(i) for i in range(1, 41)))
        await speak(h, 100, 2, start_secs=0.1)
        await h.down_recorder.wait_for(TranscriptionFinishedFrame)
    assert values(stt.segments[0]) == [36, 37, 38, 39, 40, 100, 101]  # 0.1 s = 5 chunks


async def test_audio_and_vad_frames_pass_while_a_transcription_runs(no_leaked_tasks: None) -> None:
    stt = ScriptedSTT(["first"])
    stt.gate = asyncio.Event()
    async with PipelineHarness(stt) as h:
        await speak(h, 100, 10)
        await stt.entered.wait()
        later = [chunk(7) for _ in range(5)]
        await h.push(*later, VADUserStartedSpeakingFrame(start_secs=0.2))
        await h.down_recorder.wait_for(VADUserStartedSpeakingFrame, count=2)
        assert all(f in h.down for f in later)
        assert not h.down_recorder.of_type(TranscriptionFrame)
        stt.gate.set()
        await h.down_recorder.wait_for(TranscriptionFinishedFrame)
        await h.push(VADUserStoppedSpeakingFrame())
    down = h.down
    assert down.index(later[-1]) < down.index(h.down_recorder.of_type(TranscriptionFrame)[0])


async def test_segments_are_transcribed_one_at_a_time_in_order(no_leaked_tasks: None) -> None:
    stt = ScriptedSTT(["one", "two", "three"])
    stt.gate = asyncio.Event()
    async with PipelineHarness(stt) as h:
        for n in range(3):
            await speak(h, 100 * (n + 1), 5)
        await stt.entered.wait()
        await h.down_recorder.wait_for(VADUserStoppedSpeakingFrame, count=3)  # all three handed over
        assert len(stt.segments) == 1  # the others wait for the first
        stt.gate.set()
        await h.down_recorder.wait_for(TranscriptionFinishedFrame, count=3)
    assert stt.max_running == 1
    assert [f.text for f in h.down_recorder.of_type(TranscriptionFrame)] == ["one", "two", "three"]
    assert [values(s)[-1] for s in stt.segments] == [104, 204, 304]
    finished = h.down_recorder.of_type(TranscriptionFinishedFrame)
    assert [f.text for f in finished] == ["one", "two", "three"]
    out = kinds(h.down)
    assert [k for k in out if k.startswith("Transcription")] == [
        "TranscriptionFrame",
        "TranscriptionFinishedFrame",
    ] * 3


async def test_empty_transcript_gives_only_a_finished_frame() -> None:
    stt = ScriptedSTT(["  "])
    async with PipelineHarness(stt) as h:
        await speak(h, 100, 5)
        finished = await h.down_recorder.wait_for(TranscriptionFinishedFrame)
    assert finished.text == ""
    assert not h.down_recorder.of_type(TranscriptionFrame)


async def test_recogniser_error_is_reported_and_the_session_goes_on(no_leaked_tasks: None) -> None:
    stt = ScriptedSTT([RuntimeError("model exploded"), "second"])
    async with PipelineHarness(stt) as h:
        await speak(h, 100, 5)
        first = await h.down_recorder.wait_for(TranscriptionFinishedFrame)
        assert first.text == ""
        errors = [f for f in h.up if isinstance(f, ErrorFrame)]
        assert len(errors) == 1 and "model exploded" in errors[0].error and not errors[0].fatal
        await speak(h, 200, 5)
        await h.down_recorder.wait_for(TranscriptionFinishedFrame, count=2)
    assert [f.text for f in h.down_recorder.of_type(TranscriptionFrame)] == ["second"]


async def test_muted_stt_records_nothing_but_still_finishes_the_turn() -> None:
    stt = ScriptedSTT(["heard"])
    async with PipelineHarness(stt) as h:
        await h.push(STTMuteFrame(mute=True))
        await speak(h, 100, 5)
        first = await h.down_recorder.wait_for(TranscriptionFinishedFrame)
        assert first.text == "" and stt.segments == []
        assert stt.muted
        await h.push(STTMuteFrame(mute=False))
        await speak(h, 200, 5)
        await h.down_recorder.wait_for(TranscriptionFinishedFrame, count=2)
    assert len(h.down_recorder.of_type(STTMuteFrame)) == 2
    assert [values(s) for s in stt.segments] == [[*range(100, 105), *range(200, 205)]]
    assert [f.text for f in h.down_recorder.of_type(TranscriptionFrame)] == ["heard"]


async def test_mute_during_a_segment_drops_it() -> None:
    stt = ScriptedSTT(["never"])
    async with PipelineHarness(stt) as h:
        await h.push(VADUserStartedSpeakingFrame(start_secs=0.2), chunk(1))
        await h.push(STTMuteFrame(mute=True), chunk(2), VADUserStoppedSpeakingFrame())
        finished = await h.down_recorder.wait_for(TranscriptionFinishedFrame)
    assert finished.text == "" and stt.segments == []


async def test_update_settings_changes_language_and_targeting_works() -> None:
    stt = ScriptedSTT(["hallo", "bonjour"])
    other = object()
    async with PipelineHarness(stt) as h:
        await h.push(STTUpdateSettingsFrame(settings={"language": "de"}))
        await speak(h, 100, 5)
        await h.down_recorder.wait_for(TranscriptionFinishedFrame)
        await h.push(STTUpdateSettingsFrame(settings={"language": "fr"}, service=other))
        await h.push(STTUpdateSettingsFrame(settings={"language": "fr"}, service=stt))
        await speak(h, 200, 5)
        await h.down_recorder.wait_for(TranscriptionFinishedFrame, count=2)
    assert [f.language for f in h.down_recorder.of_type(TranscriptionFrame)] == ["de", "fr"]
    forwarded = h.down_recorder.of_type(STTUpdateSettingsFrame)
    assert [f.service for f in forwarded] == [None, other]  # the one addressed to this service stops here


async def test_long_speech_is_split_into_bounded_parts() -> None:
    stt = ScriptedSTT(["part one", "part two", "part three"], max_segment_secs=3.0, pre_roll_secs=0.0)
    async with PipelineHarness(stt) as h:
        await h.push(VADUserStartedSpeakingFrame(start_secs=0.0))
        # 7 s of "speech" with a quiet chunk every 0.5 s: the cuts land on quiet chunks.
        await h.push(*(chunk(0 if i % 25 == 24 else 1000 + i) for i in range(350)))
        await h.push(VADUserStoppedSpeakingFrame())
        finished = await h.down_recorder.wait_for(TranscriptionFinishedFrame)
    lengths = [len(s) / 2 / RATE for s in stt.segments]
    assert len(lengths) == 3
    assert all(length <= 3.0 for length in lengths)
    assert sum(lengths) == pytest.approx(7.0)
    for part in stt.segments[:-1]:
        assert np.frombuffer(part, dtype="<i2")[-1] == 0  # cut inside a quiet chunk
    assert [f.text for f in h.down_recorder.of_type(TranscriptionFrame)] == [
        "part one",
        "part two",
        "part three",
    ]
    assert finished.text == "part one part two part three"
    assert len(h.down_recorder.of_type(TranscriptionFinishedFrame)) == 1


async def test_end_frame_waits_for_pending_segments_and_the_open_one(no_leaked_tasks: None) -> None:
    stt = ScriptedSTT(["done", "cut short"])
    stt.gate = asyncio.Event()
    async with PipelineHarness(stt) as h:
        await speak(h, 100, 5)
        await h.push(VADUserStartedSpeakingFrame(start_secs=0.2), chunk(5), chunk(6))
        await stt.entered.wait()
        await h.down_recorder.wait_for(VADUserStartedSpeakingFrame, count=2)
        assert stt.recording  # the second segment is open
        end = asyncio.create_task(h.end())
        await stt.end_arrived.wait()
        assert not stt.recording  # the EndFrame closed the open segment
        assert not h.down_recorder.of_type(EndFrame)  # held while the segments are transcribed
        stt.gate.set()
        await end
    out = kinds(h.down)
    assert out[-5:] == [
        "TranscriptionFrame",
        "TranscriptionFinishedFrame",
        "TranscriptionFrame",
        "TranscriptionFinishedFrame",
        "EndFrame",
    ]


async def test_cancel_stops_a_running_transcription(no_leaked_tasks: None) -> None:
    stt = ScriptedSTT(["never"])
    stt.gate = asyncio.Event()
    async with PipelineHarness(stt) as h:
        await speak(h, 100, 5)
        await stt.entered.wait()
        await h.cancel()
    assert stt.running == 0
    assert not h.down_recorder.of_type(TranscriptionFrame)


async def test_interruption_does_not_drop_the_users_words() -> None:
    stt = ScriptedSTT(["keep me"])
    stt.gate = asyncio.Event()
    async with PipelineHarness(stt) as h:
        await speak(h, 100, 5)
        await stt.entered.wait()
        await h.push(InterruptionFrame())
        await h.down_recorder.wait_for(InterruptionFrame)
        stt.gate.set()
        await h.down_recorder.wait_for(TranscriptionFinishedFrame)
    assert [f.text for f in h.down_recorder.of_type(TranscriptionFrame)] == ["keep me"]


async def test_user_audio_frames_carry_the_user_id() -> None:
    stt = ScriptedSTT(["hi"], user_id="default")
    async with PipelineHarness(stt) as h:
        await h.push(VADUserStartedSpeakingFrame(start_secs=0.0))
        frame = UserAudioRawFrame(
            audio=b"\x01\x00" * CHUNK, sample_rate=RATE, num_channels=1, user_id="alice"
        )
        await h.push(frame, VADUserStoppedSpeakingFrame())
        await h.down_recorder.wait_for(TranscriptionFinishedFrame)
    assert h.down_recorder.of_type(TranscriptionFrame)[0].user_id == "alice"


async def test_stereo_input_is_recorded_as_mono() -> None:
    stt = ScriptedSTT(["x"], pre_roll_secs=0.0)
    stereo = np.tile(np.array([100, 300], dtype="<i2"), CHUNK).tobytes()
    async with PipelineHarness(stt) as h:
        await h.push(VADUserStartedSpeakingFrame(start_secs=0.0))
        await h.push(
            InputAudioRawFrame(audio=stereo, sample_rate=RATE, num_channels=2), VADUserStoppedSpeakingFrame()
        )
        await h.down_recorder.wait_for(TranscriptionFinishedFrame)
    assert np.frombuffer(stt.segments[0], dtype="<i2").tolist() == [200] * CHUNK


async def test_metrics_ttfb_from_vad_stop_processing_and_usage() -> None:
    clock = FakeClock()
    stt = ScriptedSTT(["timed"], pre_roll_secs=0.0)
    stt.gate = asyncio.Event()
    params = PipelineParams(enable_metrics=True, enable_usage_metrics=True)
    async with PipelineHarness(stt, params=params, clock=clock) as h:
        await h.push(VADUserStartedSpeakingFrame(start_secs=0.0), *(chunk(1) for _ in range(50)))
        await h.push(VADUserStoppedSpeakingFrame())
        await stt.entered.wait()
        await clock.advance(0.25)
        stt.gate.set()
        await h.down_recorder.wait_for(TranscriptionFinishedFrame)
    data = [d for f in h.down_recorder.of_type(MetricsFrame) for d in f.data]
    ttfb = [d.value for d in data if isinstance(d, TTFBMetricsData) and d.value > 0]
    processing = [d.value for d in data if isinstance(d, ProcessingMetricsData) and d.value > 0]
    usage = [d.audio_seconds for d in data if isinstance(d, STTUsageMetricsData)]
    assert ttfb == [pytest.approx(0.25)]
    assert processing == [pytest.approx(0.25)]
    assert usage == [pytest.approx(1.0)]
    assert stt.can_generate_metrics()


def test_rejects_bad_settings() -> None:
    with pytest.raises(ValueError):
        ScriptedSTT(pre_roll_secs=-1)
    with pytest.raises(ValueError):
        ScriptedSTT(max_segment_secs=1.0)


# -- drafts: transcription started at the VAD's "ending", before its stop ---------------------------------


async def test_a_draft_made_at_the_pause_is_the_segments_transcript() -> None:
    stt = ScriptedSTT(["Can you tell me a joke?"])
    async with PipelineHarness(stt) as h:
        await h.push(VADUserStartedSpeakingFrame(start_secs=0.0))
        await h.push(*(chunk(100 + i) for i in range(5)))
        await h.push(VADSpeechEndingFrame(quiet_secs=0.1, until_stop_secs=0.1))
        await stt.entered.wait()  # the recogniser runs before the stop
        assert not h.down_recorder.of_type(TranscriptionFrame)  # and nobody sees the draft
        await h.push(chunk(0), VADUserStoppedSpeakingFrame(stop_secs=0.2))
        finished = await h.down_recorder.wait_for(TranscriptionFinishedFrame)
    assert finished.text == "Can you tell me a joke?"
    assert len(stt.segments) == 1  # not transcribed again at the stop
    assert values(stt.segments[0]) == [*range(100, 105)]


async def test_speech_after_the_pause_drops_the_draft() -> None:
    stt = ScriptedSTT(["Can you tell me", "Can you tell me a joke?"])
    stt.gate = asyncio.Event()
    async with PipelineHarness(stt) as h:
        await h.push(VADUserStartedSpeakingFrame(start_secs=0.0))
        await h.push(*(chunk(100 + i) for i in range(3)))
        await h.push(VADSpeechEndingFrame(quiet_secs=0.1, until_stop_secs=0.1))
        await stt.entered.wait()  # the draft is being made when the user goes on
        await h.push(VADSpeechResumedFrame(), *(chunk(200 + i) for i in range(3)))
        await h.push(VADUserStoppedSpeakingFrame(stop_secs=0.2))
        stt.gate.set()
        finished = await h.down_recorder.wait_for(TranscriptionFinishedFrame)
    assert finished.text == "Can you tell me a joke?"  # the whole segment's, not the draft's
    assert [t.text for t in h.down_recorder.of_type(TranscriptionFrame)] == ["Can you tell me a joke?"]
    assert values(stt.segments[1]) == [100, 101, 102, 200, 201, 202]


async def test_a_draft_overtaken_before_its_turn_is_not_made() -> None:
    stt = ScriptedSTT(["earlier", "whole"])
    stt.gate = asyncio.Event()
    async with PipelineHarness(stt) as h:
        await speak(h, 1, 2)  # an earlier segment keeps the recogniser busy
        await stt.entered.wait()
        await h.push(VADUserStartedSpeakingFrame(start_secs=0.0), chunk(100))
        await h.push(VADSpeechEndingFrame(quiet_secs=0.1, until_stop_secs=0.1))
        await h.push(VADSpeechResumedFrame(), chunk(200), VADUserStoppedSpeakingFrame(stop_secs=0.2))
        stt.gate.set()
        await h.down_recorder.wait_for(TranscriptionFinishedFrame, count=2)
    assert len(stt.segments) == 2  # no draft of [100]
    assert values(stt.segments[1])[-2:] == [100, 200]
    assert [t.text for t in h.down_recorder.of_type(TranscriptionFrame)] == ["earlier", "whole"]


async def test_a_failed_draft_is_transcribed_again_at_the_stop() -> None:
    stt = ScriptedSTT([RuntimeError("busy"), "Hello."])
    async with PipelineHarness(stt) as h:
        await h.push(VADUserStartedSpeakingFrame(start_secs=0.0), chunk(100))
        await h.push(VADSpeechEndingFrame(quiet_secs=0.1, until_stop_secs=0.1))
        await h.push(VADUserStoppedSpeakingFrame(stop_secs=0.2))
        finished = await h.down_recorder.wait_for(TranscriptionFinishedFrame)
    assert finished.text == "Hello."
    assert len(stt.segments) == 2
    assert not h.up_recorder.of_type(ErrorFrame)  # the draft's failure is nobody's concern


async def test_a_draft_heard_as_nothing_is_transcribed_again_at_the_stop() -> None:
    stt = ScriptedSTT(["", "Turn off the lights."])
    async with PipelineHarness(stt) as h:
        await h.push(VADUserStartedSpeakingFrame(start_secs=0.0), chunk(100))
        await h.push(VADSpeechEndingFrame(quiet_secs=0.1, until_stop_secs=0.1))
        await stt.entered.wait()
        await h.push(chunk(0), VADUserStoppedSpeakingFrame(stop_secs=0.2))
        finished = await h.down_recorder.wait_for(TranscriptionFinishedFrame)
    assert finished.text == "Turn off the lights."
    assert len(stt.segments) == 2 and values(stt.segments[1])[-2:] == [100, 0]
