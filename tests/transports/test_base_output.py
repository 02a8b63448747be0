from __future__ import annotations

from typing import Any

from voxloop.frames import (
    BotSpeakingFrame,
    BotStartedSpeakingFrame,
    BotStoppedSpeakingFrame,
    EndFrame,
    InterruptionFrame,
    OutputAudioRawFrame,
    OutputTransportMessageFrame,
    OutputTransportMessageUrgentFrame,
    TTSAudioRawFrame,
)
from voxloop.testing import FakeClock, PipelineHarness
from voxloop.transports.base_output import BaseOutputTransport
from voxloop.transports.params import TransportParams

MS = 1_000_000


class RecordingOutput(BaseOutputTransport):
    """Writes go to lists, stamped with the (fake) clock."""

    def __init__(self, params: TransportParams) -> None:
        super().__init__(params)
        self.writes: list[tuple[int, bytes]] = []
        self.sent: list[tuple[int, Any]] = []
        self.interruptions = 0

    async def write_audio(self, audio: bytes, sample_rate: int) -> None:
        self.writes.append((self.clock.now_ns(), audio))

    async def send_message(self, message: Any) -> None:
        self.sent.append((self.clock.now_ns(), message))

    async def send_interruption(self) -> None:
        self.interruptions += 1


def tone(ms: int, rate: int = 24000) -> bytes:
    return b"\x10\x20" * (rate * ms // 1000)


async def test_audio_is_chunked_and_paced_with_a_lead() -> None:
    clock = FakeClock()
    output = RecordingOutput(TransportParams(audio_out_chunk_ms=40, audio_out_lead_ms=100))
    async with PipelineHarness(output, clock=clock) as h:
        t0 = clock.now_ns()
        await h.push(TTSAudioRawFrame(audio=tone(400), sample_rate=24000, num_channels=1))
        await h.push(OutputTransportMessageFrame(message={"after": "audio"}))
        await clock.advance(0.5)
        await h.down_recorder.wait_for(OutputTransportMessageFrame)
    sizes = {len(chunk) for _, chunk in output.writes}
    assert sizes == {24000 * 40 // 1000 * 2} and len(output.writes) == 10
    offsets = [(t - t0) // MS for t, _ in output.writes]
    # Chunk n plays at 40n ms and is sent 100 ms ahead: the first three go at once, then one per 40 ms.
    assert offsets == [max(0, 40 * n - 100) for n in range(10)]
    # The message queued behind the audio left only after the last chunk was sent.
    assert output.sent[0][0] >= output.writes[-1][0]
    # Played chunks continue downstream, same class as what came in.
    assert len(h.down_recorder.of_type(TTSAudioRawFrame)) == 10


async def test_speaking_state_follows_the_audio() -> None:
    clock = FakeClock()
    params = TransportParams(audio_out_chunk_ms=40, audio_out_lead_ms=0, bot_stop_grace_secs=0.1)
    output = RecordingOutput(params)
    async with PipelineHarness(output, clock=clock) as h:
        t0 = clock.now_ns()
        await h.push(OutputAudioRawFrame(audio=tone(400), sample_rate=24000, num_channels=1))
        await clock.advance(0.45)
        assert not h.down_recorder.of_type(BotStoppedSpeakingFrame)  # 400 ms played + 100 ms grace
        await clock.advance(0.1)
        await h.down_recorder.wait_for(BotStoppedSpeakingFrame)
        stopped_at = clock.now_ns()
    down = h.down_recorder.frames
    started = h.down_recorder.of_type(BotStartedSpeakingFrame)
    assert len(started) == 1 and len(h.up_recorder.of_type(BotStartedSpeakingFrame)) == 1
    assert down.index(started[0]) < down.index(h.down_recorder.of_type(OutputAudioRawFrame)[0])
    assert len(h.down_recorder.of_type(BotSpeakingFrame)) >= 1
    assert len(h.up_recorder.of_type(BotStoppedSpeakingFrame)) == 1
    assert (stopped_at - t0) // MS >= 500


async def test_interruption_drops_queued_audio_at_once() -> None:
    clock = FakeClock()
    output = RecordingOutput(TransportParams(audio_out_chunk_ms=20, audio_out_lead_ms=40))
    async with PipelineHarness(output, clock=clock) as h:
        await h.push(OutputAudioRawFrame(audio=tone(1000), sample_rate=24000, num_channels=1))
        await h.push(OutputAudioRawFrame(audio=tone(1000), sample_rate=24000, num_channels=1))
        await h.push(OutputTransportMessageFrame(message="never sent"))
        await clock.advance(0.2)
        written = len(output.writes)
        await h.push(InterruptionFrame())
        await h.down_recorder.wait_for(BotStoppedSpeakingFrame)
        await clock.advance(1.0)
        assert len(output.writes) == written  # nothing more after the interruption
        await h.push(OutputTransportMessageUrgentFrame(message="urgent"))
        await h.push(OutputAudioRawFrame(audio=tone(100), sample_rate=24000, num_channels=1))
        await clock.advance(0.2)
    assert written < 20 and output.interruptions == 1
    assert [m for _, m in output.sent] == ["urgent"]
    assert len(output.writes) == written + 5  # a new turn plays normally


async def test_end_waits_until_everything_has_played() -> None:
    clock = FakeClock()
    output = RecordingOutput(TransportParams(audio_out_chunk_ms=40, audio_out_lead_ms=100))
    harness = PipelineHarness(output, clock=clock)
    async with harness as h:
        t0 = clock.now_ns()
        await h.push(OutputAudioRawFrame(audio=tone(200), sample_rate=24000, num_channels=1))
        await h.task.stop_when_done()
        await clock.advance(0.1)
        assert not h.down_recorder.of_type(EndFrame)
        await clock.advance(0.2)
        await h.down_recorder.wait_for(EndFrame)
        ended = clock.now_ns()
    assert (ended - t0) // MS >= 200
    assert h.down_recorder.of_type(BotStoppedSpeakingFrame)


async def test_audio_is_converted_to_the_output_rate() -> None:
    clock = FakeClock()
    output = RecordingOutput(TransportParams(audio_out_sample_rate=24000, audio_out_lead_ms=10_000))
    async with PipelineHarness(output, clock=clock) as h:
        stereo_16k = b"\x00\x10\x00\x10" * 16000  # 1 s of 16 kHz stereo
        await h.push(OutputAudioRawFrame(audio=stereo_16k, sample_rate=16000, num_channels=2))
        await h.push(OutputAudioRawFrame(audio=b"\x00\x10" * 16000, sample_rate=16000, num_channels=1))
        await h.push(OutputTransportMessageFrame(message="done"))
        await h.down_recorder.wait_for(OutputTransportMessageFrame)
        await clock.advance(3)  # let it play out, so the End at exit does not wait
    total = sum(len(chunk) for _, chunk in output.writes)
    assert abs(total - 2 * 24000 * 2) < 2 * 24000 * 2 * 0.02  # 2 s of 24 kHz mono, give or take filter delay
