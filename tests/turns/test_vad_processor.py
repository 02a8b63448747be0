"""VADProcessor on the real Silero model and the shared test recordings."""

from __future__ import annotations

import importlib.util
import os

import numpy as np
import pytest
import soxr

from helpers.paths import AUDIO
from voxloop.audio import SileroVAD
from voxloop.frames import (
    Frame,
    InputAudioRawFrame,
    UserSpeakingFrame,
    VADParamsUpdateFrame,
    VADSpeechEndingFrame,
    VADUserStartedSpeakingFrame,
    VADUserStoppedSpeakingFrame,
)
from voxloop.testing import PipelineHarness, load_wav
from voxloop.turns import VADParams, VADProcessor

# Energy-based speech segments of vad_two_utts.wav (../shared/testdata/audio/README.md).
REFERENCE = [(1.00, 3.51), (5.49, 7.44)]
CHUNK_MS = 20


@pytest.fixture(scope="module", autouse=True)
def _model() -> None:
    missing = [name for name in ("faster_whisper", "onnxruntime") if importlib.util.find_spec(name) is None]
    if missing:
        if os.environ.get("CI"):
            pytest.fail(f"{missing} not installed")
        pytest.skip(f"{missing} not installed")


def chunks(pcm: bytes, rate: int, channels: int) -> list[InputAudioRawFrame]:
    size = rate * CHUNK_MS // 1000 * 2 * channels
    return [
        InputAudioRawFrame(audio=pcm[i : i + size], sample_rate=rate, num_channels=channels)
        for i in range(0, len(pcm), size)
    ]


def events_with_stream_time(frames: list[Frame], rate: int, channels: int) -> list[tuple[Frame, float]]:
    """Each VAD frame with the seconds of audio that had gone downstream before it."""
    seconds = 0.0
    out: list[tuple[Frame, float]] = []
    for frame in frames:
        if isinstance(frame, InputAudioRawFrame):
            seconds += len(frame.audio) / 2 / channels / rate
        elif isinstance(frame, VADUserStartedSpeakingFrame | VADUserStoppedSpeakingFrame):
            out.append((frame, seconds))
    return out


@pytest.mark.parametrize("name", ["vad_two_utts.wav", "vad_two_utts_noisy10db.wav"])
async def test_two_utterances_give_two_segments_at_sensible_times(name: str, no_leaked_tasks: None) -> None:
    pcm, rate, channels = load_wav(AUDIO / name)
    processor = VADProcessor(SileroVAD())
    async with PipelineHarness(processor) as h:
        await h.push(*chunks(pcm, rate, channels))
    events = events_with_stream_time(h.down, rate, channels)
    kinds = [type(frame) for frame, _ in events]
    assert kinds == [VADUserStartedSpeakingFrame, VADUserStoppedSpeakingFrame] * 2
    # All the audio went on, untouched.
    audio = [f for f in h.down if isinstance(f, InputAudioRawFrame)]
    assert b"".join(f.audio for f in audio) == pcm
    for (began, began_at), (ended, ended_at), (start, stop) in zip(
        events[::2], events[1::2], REFERENCE, strict=True
    ):
        assert isinstance(began, VADUserStartedSpeakingFrame) and isinstance(
            ended, VADUserStoppedSpeakingFrame
        )
        # The frames carry the delay really used: 0.2 s / 0.3 s rounded up to whole 32 ms frames.
        assert began.start_secs == pytest.approx(0.224)
        assert ended.stop_secs == pytest.approx(0.32)
        assert began.timestamp > 0 and ended.timestamp >= began.timestamp
        # Each decision comes about start_secs after the onset / stop_secs after the end of speech.
        assert abs(began_at - began.start_secs - start) <= 0.12, began_at
        assert abs(ended_at - ended.stop_secs - stop) <= 0.12, ended_at
        # UserSpeakingFrames tick about every 0.1 s between the two, on speech frames only.
    down = h.down
    ticks = [i for i, f in enumerate(down) if isinstance(f, UserSpeakingFrame)]
    first_start, first_stop = (down.index(frame) for frame, _ in events[:2])
    in_first = [i for i in ticks if first_start < i < first_stop]
    assert 14 <= len(in_first) <= 30  # ~2.6 s of speaking state / 0.1 s, less the pauses
    between = [i for i in ticks if first_stop < i < down.index(events[2][0])]
    assert between == []


async def test_runs_in_a_thread_with_the_same_decisions(no_leaked_tasks: None) -> None:
    pcm, rate, channels = load_wav(AUDIO / "vad_two_utts.wav")
    processor = VADProcessor(run_in_thread=True)
    async with PipelineHarness(processor) as h:
        await h.push(*chunks(pcm, rate, channels))
        await h.down_recorder.wait_for(VADUserStoppedSpeakingFrame, count=2, timeout=30)
    kinds = [
        type(f) for f in h.down if isinstance(f, VADUserStartedSpeakingFrame | VADUserStoppedSpeakingFrame)
    ]
    assert kinds == [VADUserStartedSpeakingFrame, VADUserStoppedSpeakingFrame] * 2
    assert len([f for f in h.down if isinstance(f, InputAudioRawFrame)]) == len(chunks(pcm, rate, channels))


async def test_48k_stereo_input_is_resampled_for_the_vad(no_leaked_tasks: None) -> None:
    pcm, rate, _ = load_wav(AUDIO / "vad_two_utts.wav")
    mono = np.frombuffer(pcm, dtype="<i2")
    up = soxr.resample(mono, rate, 48000).astype("<i2")
    stereo = np.repeat(up, 2).tobytes()
    processor = VADProcessor()
    async with PipelineHarness(processor) as h:
        await h.push(*chunks(stereo, 48000, 2))
    events = events_with_stream_time(h.down, 48000, 2)
    assert [type(f) for f, _ in events] == [VADUserStartedSpeakingFrame, VADUserStoppedSpeakingFrame] * 2
    assert abs(events[0][1] - 0.224 - REFERENCE[0][0]) <= 0.12
    # The audio passed on is the original 48 kHz stereo.
    assert {(f.sample_rate, f.num_channels) for f in h.down if isinstance(f, InputAudioRawFrame)} == {
        (48000, 2)
    }


async def test_params_change_at_run_time(no_leaked_tasks: None) -> None:
    pcm, rate, channels = load_wav(AUDIO / "vad_two_utts.wav")
    processor = VADProcessor(params=VADParams(stop_secs=0.3))
    frames = chunks(pcm, rate, channels)
    async with PipelineHarness(processor) as h:
        # 2.5 s of silence needed to stop: the 2 s pause no longer splits the utterances, and the
        # 1 s of silence at the end is too short to stop at all.
        await h.push(VADParamsUpdateFrame(stop_secs=2.5), *frames)
    kinds = [
        type(f) for f in h.down if isinstance(f, VADUserStartedSpeakingFrame | VADUserStoppedSpeakingFrame)
    ]
    assert kinds == [VADUserStartedSpeakingFrame]
    assert processor.params.stop_secs == 2.5 and processor.params.confidence == 0.7
    assert any(isinstance(f, VADParamsUpdateFrame) for f in h.down)  # passed on


async def test_invalid_params_update_is_reported_and_ignored(no_leaked_tasks: None) -> None:
    processor = VADProcessor()
    async with PipelineHarness(processor) as h:
        await h.push(VADParamsUpdateFrame(confidence=3.0))
    assert processor.params.confidence == 0.7
    assert any("invalid VAD params" in getattr(f, "error", "") for f in h.up)


def test_a_short_pause_inside_speech_is_ending_then_resumed_and_a_long_one_ends_the_segment() -> None:
    first, rate, _ = load_wav(AUDIO / "utt02_timer.wav")
    second, _, _ = load_wav(AUDIO / "utt04_lights.wav")
    gap = bytes(2 * round(0.16 * rate))  # longer than ending_secs (4 frames), shorter than the stop (7)
    pcm = bytes(2 * rate) + trimmed(first) + gap + trimmed(second) + bytes(2 * rate)
    vad = SileroVAD(stop_secs=0.2, ending_secs=0.1)
    events = [e.kind for e in vad.analyze(pcm)]
    assert events == ["resumed", "started", "ending", "resumed", "ending", "stopped"]
    plain = SileroVAD(stop_secs=0.2)  # without ending_secs: the decisions only, and the same ones
    assert [e.kind for e in plain.analyze(pcm)] == ["started", "stopped"]


def trimmed(pcm: bytes) -> bytes:
    """``pcm`` without its leading and trailing silence."""
    loud = np.flatnonzero(np.abs(np.frombuffer(pcm, dtype="<i2").astype(np.int32)) > 300)
    return pcm[2 * int(loud[0]) : 2 * (int(loud[-1]) + 1)]


async def test_the_processor_pushes_ending_before_the_stop(no_leaked_tasks: None) -> None:
    pcm, rate, channels = load_wav(AUDIO / "utt01_weather.wav")
    processor = VADProcessor(params=VADParams(stop_secs=0.2, ending_secs=0.1))
    async with PipelineHarness(processor) as h:
        await h.push(*chunks(bytes(rate) + pcm + bytes(rate), rate, channels))
        await h.down_recorder.wait_for(VADUserStoppedSpeakingFrame)
    vad_frames = [f for f in h.down if isinstance(f, VADSpeechEndingFrame | VADUserStoppedSpeakingFrame)]
    ending, stopped = vad_frames[-2:]
    assert isinstance(ending, VADSpeechEndingFrame) and isinstance(stopped, VADUserStoppedSpeakingFrame)
    assert ending.quiet_secs == pytest.approx(0.128) and ending.until_stop_secs == pytest.approx(0.096)
    with pytest.raises(ValueError, match="ending_secs"):
        VADParams(stop_secs=0.2, ending_secs=0.2)
