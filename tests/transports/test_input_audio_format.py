"""Client audio formats are checked before any conversion work: bounded memory, one clear error."""

from __future__ import annotations

import asyncio
import tracemalloc

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from voxloop.audio import SAMPLE_RATES, check_audio_format
from voxloop.audio.input_format import MAX_FRAME_SECS
from voxloop.frames import ErrorFrame, InputAudioRawFrame, StartFrame
from voxloop.pipeline import DOWNSTREAM, UPSTREAM
from voxloop.testing import FakeClock, FrameRecorder, PipelineHarness
from voxloop.transports.base_input import BaseInputTransport
from voxloop.transports.params import TransportParams


def test_usual_formats_pass_and_the_rest_say_why() -> None:
    assert check_audio_format(512, 16000, 1) is None
    assert check_audio_format(3840, 48000, 2) is None
    assert check_audio_format(320, 8000, 1) is None
    assert check_audio_format(0, 16000, 1) is None  # nothing to convert, nothing wrong
    cases = {
        (2000, 1, 1): ("sample_rate", "1 Hz is not supported"),
        (2000, 96000, 1): ("sample_rate", "96000 Hz"),
        (2000, 16000, 0): ("num_channels", "0 channels"),
        (2000, 16000, 6): ("num_channels", "6 channels"),
        (511, 16000, 1): ("length", "511 bytes is not a whole number"),
        (6, 16000, 2): ("length", "for 2 channel"),
        (int(MAX_FRAME_SECS * 8000 + 1) * 2, 8000, 1): ("size", "more than 10 s"),
    }
    for (size, rate, channels), (kind, text) in cases.items():
        problem = check_audio_format(size, rate, channels)
        assert problem is not None and problem.kind == kind and text in problem.message, (
            size,
            rate,
            channels,
        )


async def test_bad_frames_are_dropped_with_one_error_per_kind_and_good_audio_still_flows() -> None:
    clock = FakeClock()
    transport = BaseInputTransport(TransportParams())
    async with PipelineHarness(transport, clock=clock) as h:
        for _ in range(5):  # the outside tester's flood: 2,000 bytes declaring 1 Hz
            await transport.push_audio(bytes(2000), 1, 1)
        await transport.push_audio(bytes(2400), 16000, 3)
        await transport.push_audio(bytes(2000), 1, 1)
        await clock.advance(10)
        await transport.push_audio(bytes(2000), 1, 1)  # reported again, with the count since
        await transport.push_audio(bytes(640), 16000, 1)
        await h.down_recorder.wait_for(InputAudioRawFrame)
    errors = [f.error for f in h.up_recorder.of_type(ErrorFrame)]
    assert len(errors) == 3, errors
    assert "sample rate 1 Hz is not supported" in errors[0] and "more such" not in errors[0]
    assert "3 channels" in errors[1]
    assert "1 Hz" in errors[2] and "5 more such frames dropped" in errors[2]
    audio = h.down_recorder.of_type(InputAudioRawFrame)
    assert [len(f.audio) for f in audio] == [640]


# -- property: whatever format a client declares, the work is bounded ---------------------------

declared_rates = st.sampled_from(sorted(SAMPLE_RATES)) | st.integers(0, 1_000_000)
declared_channels = st.integers(0, 8)
byte_counts = st.integers(0, 48_000)


async def _push_one(audio: bytes, sample_rate: int, num_channels: int) -> tuple[int, int, int]:
    """(bytes of audio out, errors up, peak bytes traced) for one frame into a fresh input transport.

    A first frame goes to another transport untraced: the resampler's filter for a rate pair is designed
    once per process and shared by every stream (a few MB for 44.1 kHz), which is not a frame's cost."""
    warm = BaseInputTransport(TransportParams())
    await warm.queue_frame(StartFrame())
    await warm.push_audio(audio, sample_rate, num_channels)
    await warm.cleanup()
    up, transport, down = (
        FrameRecorder(UPSTREAM),
        BaseInputTransport(TransportParams()),
        FrameRecorder(DOWNSTREAM),
    )
    up.link(transport)
    transport.link(down)
    await up.queue_frame(StartFrame())
    tracemalloc.start()
    try:
        await transport.push_audio(audio, sample_rate, num_channels)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
        await transport.cleanup()
    out = sum(len(f.audio) for f in down.of_type(InputAudioRawFrame))
    return out, len(up.of_type(ErrorFrame)), peak


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(declared_rates, declared_channels, byte_counts)
def test_any_declared_format_costs_a_bounded_amount_and_valid_ones_pass(
    sample_rate: int, num_channels: int, byte_count: int
) -> None:
    out, errors, peak = asyncio.run(_push_one(bytes(byte_count), sample_rate, num_channels))
    valid = (
        sample_rate in SAMPLE_RATES
        and 1 <= num_channels <= 2
        and byte_count % (2 * num_channels) == 0
        and byte_count <= MAX_FRAME_SECS * sample_rate * 2 * num_channels
    )
    # 8 kHz -> 16 kHz at most doubles the audio; mono from stereo halves it.
    assert out <= 2 * byte_count + 64
    assert peak <= 6 * byte_count + 256 * 1024, f"{peak} bytes traced for a {byte_count}-byte frame"
    if valid:
        assert errors == 0
        if byte_count >= 0.05 * sample_rate * 2 * num_channels:  # longer than the resampler holds back
            assert out > 0
    else:
        assert errors == 1 and out == 0
