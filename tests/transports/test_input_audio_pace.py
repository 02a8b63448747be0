"""Client audio may run ahead of real time by a burst (2 s), no more: a client sending faster than it
could talk gets its surplus dropped with one error, so nothing behind the input grows without bound."""

from __future__ import annotations

from voxloop.frames import ErrorFrame, InputAudioRawFrame
from voxloop.testing import FakeClock, PipelineHarness
from voxloop.transports.base_input import BaseInputTransport
from voxloop.transports.params import TransportParams

FRAME = bytes(640)  # 20 ms at 16 kHz mono
FRAME_SECS = 0.02


async def _push_seconds(transport: BaseInputTransport, secs: float) -> None:
    for _ in range(round(secs / FRAME_SECS)):
        await transport.push_audio(FRAME, 16000, 1)


def _taken_secs(h: PipelineHarness) -> float:
    return sum(len(f.audio) for f in h.down_recorder.of_type(InputAudioRawFrame)) / 32000


async def test_audio_far_ahead_of_real_time_is_dropped_with_one_throttled_error() -> None:
    clock = FakeClock()
    transport = BaseInputTransport(TransportParams())
    async with PipelineHarness(transport, clock=clock) as h:
        await _push_seconds(transport, 30)  # 30 s of audio at one instant
        await h.down_recorder.wait_for(InputAudioRawFrame)
        assert 2.0 <= _taken_secs(h) <= 2.0 + FRAME_SECS  # the burst, and not one frame more
        await clock.advance(1)  # a second later, a second more may come
        await _push_seconds(transport, 30)
        assert 3.0 <= _taken_secs(h) <= 3.0 + 2 * FRAME_SECS
        await clock.advance(10)  # caught up: the burst again, and the error again with its count
        await _push_seconds(transport, 30)
        assert 5.0 <= _taken_secs(h) <= 5.0 + 3 * FRAME_SECS
    errors = [f.error for f in h.up_recorder.of_type(ErrorFrame)]
    assert len(errors) == 2, errors
    assert "faster than real time" in errors[0] and "more such" not in errors[0]
    assert "faster than real time" in errors[1] and "dropped since the last report" in errors[1]


async def test_audio_in_real_time_is_all_taken() -> None:
    clock = FakeClock()
    transport = BaseInputTransport(TransportParams())
    async with PipelineHarness(transport, clock=clock) as h:
        await _push_seconds(transport, 1.5)  # a burst after a stall: within the allowance
        for _ in range(500):  # then 10 s at the pace of a microphone
            await transport.push_audio(FRAME, 16000, 1)
            await clock.advance(FRAME_SECS)
        await h.down_recorder.wait_for(InputAudioRawFrame)
    assert _taken_secs(h) == 11.5
    assert h.up_recorder.of_type(ErrorFrame) == []


async def test_the_limit_can_be_lifted() -> None:
    clock = FakeClock()
    transport = BaseInputTransport(TransportParams(audio_in_max_ahead_secs=None))
    async with PipelineHarness(transport, clock=clock) as h:
        await _push_seconds(transport, 5)
        await h.down_recorder.wait_for(InputAudioRawFrame)
    assert _taken_secs(h) == 5.0
