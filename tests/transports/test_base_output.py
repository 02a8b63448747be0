from __future__ import annotations

from typing import Any

import numpy as np

from voxloop.frames import (
    BotOutputPauseFrame,
    BotOutputResumeFrame,
    BotSpeakingFrame,
    BotStartedSpeakingFrame,
    BotStoppedSpeakingFrame,
    EndFrame,
    InterruptionFrame,
    OutputAudioRawFrame,
    OutputTransportMessageFrame,
    OutputTransportMessageUrgentFrame,
    TTSAudioRawFrame,
    TTSStoppedFrame,
    TTSTextFrame,
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


# -- pause and resume (the user may be barging in) -------------------------------------------------------

CHUNK_40MS = 24000 * 40 // 1000 * 2


def numbered_chunks(count: int) -> bytes:
    """``count`` 40 ms chunks of 24 kHz mono, chunk n filled with the byte n (to check the order)."""
    return b"".join(bytes([n]) * CHUNK_40MS for n in range(count))


async def test_pause_holds_the_audio_and_resume_continues_where_it_stopped() -> None:
    clock = FakeClock()
    params = TransportParams(audio_out_chunk_ms=40, audio_out_lead_ms=100, bot_stop_grace_secs=0.1)
    output = RecordingOutput(params)
    async with PipelineHarness(output, clock=clock) as h:
        t0 = clock.now_ns()
        await h.push(OutputAudioRawFrame(audio=numbered_chunks(10), sample_rate=24000, num_channels=1))
        await h.push(TTSTextFrame(text="played after its audio"))
        await h.push(OutputTransportMessageFrame(message={"after": "audio"}))
        await clock.advance(0.2)
        assert len(output.writes) == 8  # chunks 0-7 (sent 100 ms ahead; chunk 8 is due at 220 ms)
        await h.push(BotOutputPauseFrame())
        await h.down_recorder.wait_for(BotOutputPauseFrame)
        assert output.paused
        # Held: nothing written, and the bot does not stop speaking though its audio ran out (at 320 ms)
        # long ago, grace included; the text behind the audio stays queued.
        await clock.advance(1.0)
        assert len(output.writes) == 8
        assert not h.down_recorder.of_type(BotStoppedSpeakingFrame)
        assert not h.up_recorder.of_type(BotStoppedSpeakingFrame)
        assert not h.down_recorder.of_type(TTSTextFrame) and not output.sent
        resumed_at = clock.now_ns()
        await h.push(BotOutputResumeFrame())
        await h.down_recorder.wait_for(OutputTransportMessageFrame)
        assert not output.paused
        # The rest goes out at once (the player ran dry: playback restarts now), then the queued text.
        assert [(t - resumed_at) // MS for t, _ in output.writes[8:]] == [0, 0]
        assert [chunk[0] for _, chunk in output.writes] == list(range(10))
        assert all(len(set(chunk)) == 1 for _, chunk in output.writes)
        down = h.down_recorder.frames
        text = h.down_recorder.of_type(TTSTextFrame)[0]
        assert down.index(text) > down.index(h.down_recorder.of_type(OutputAudioRawFrame)[-1])
        assert output.sent[0][0] >= output.writes[-1][0]
        # And it stops speaking after the resumed audio has played (80 ms) plus the grace (100 ms).
        await clock.advance(0.17)
        assert not h.down_recorder.of_type(BotStoppedSpeakingFrame)
        await clock.advance(0.02)
        await h.down_recorder.wait_for(BotStoppedSpeakingFrame)
    assert len(h.down_recorder.of_type(BotStartedSpeakingFrame)) == 1
    assert len(h.down_recorder.of_type(BotStoppedSpeakingFrame)) == 1
    assert (resumed_at - t0) // MS == 1200
    # Both control frames pass on.
    assert h.down_recorder.of_type(BotOutputPauseFrame) and h.down_recorder.of_type(BotOutputResumeFrame)


async def test_a_pause_during_the_wait_for_the_next_chunk_holds_that_chunk() -> None:
    clock = FakeClock()
    output = RecordingOutput(TransportParams(audio_out_chunk_ms=40, audio_out_lead_ms=0))
    async with PipelineHarness(output, clock=clock) as h:
        await h.push(OutputAudioRawFrame(audio=numbered_chunks(5), sample_rate=24000, num_channels=1))
        await clock.advance(0.03)  # chunk 0 written; chunk 1 waits until 40 ms
        assert len(output.writes) == 1
        await h.push(BotOutputPauseFrame())
        await clock.advance(0.5)
        assert len(output.writes) == 1
        await h.push(BotOutputResumeFrame())
        await clock.advance(0.5)
    assert [chunk[0] for _, chunk in output.writes] == [0, 1, 2, 3, 4]


async def test_resume_with_nothing_held_stops_the_bot_after_the_grace() -> None:
    clock = FakeClock()
    params = TransportParams(audio_out_chunk_ms=40, audio_out_lead_ms=100, bot_stop_grace_secs=0.1)
    output = RecordingOutput(params)
    async with PipelineHarness(output, clock=clock) as h:
        await h.push(OutputAudioRawFrame(audio=numbered_chunks(2), sample_rate=24000, num_channels=1))
        await clock.advance(0.01)  # all sent; it plays until 80 ms
        await h.push(BotOutputPauseFrame())
        await clock.advance(1.0)
        assert not h.down_recorder.of_type(BotStoppedSpeakingFrame)  # a pause is not the end of a reply
        await h.push(BotOutputResumeFrame())
        await clock.advance(0.09)
        assert not h.down_recorder.of_type(BotStoppedSpeakingFrame)
        await clock.advance(0.02)
        await h.down_recorder.wait_for(BotStoppedSpeakingFrame)
    assert len(output.writes) == 2


async def test_interruption_while_paused_drops_everything_and_clears_the_pause() -> None:
    clock = FakeClock()
    output = RecordingOutput(TransportParams(audio_out_chunk_ms=20, audio_out_lead_ms=40))
    async with PipelineHarness(output, clock=clock) as h:
        await h.push(OutputAudioRawFrame(audio=tone(1000), sample_rate=24000, num_channels=1))
        await h.push(TTSTextFrame(text="never heard"))
        await h.push(OutputAudioRawFrame(audio=tone(1000), sample_rate=24000, num_channels=1))
        await clock.advance(0.2)
        await h.push(BotOutputPauseFrame())
        await clock.advance(0.3)
        written = len(output.writes)
        assert not h.down_recorder.of_type(BotStoppedSpeakingFrame)
        await h.push(InterruptionFrame())
        await h.down_recorder.wait_for(BotStoppedSpeakingFrame)  # at once, not after a grace
        assert not output.paused
        await clock.advance(1.0)
        assert len(output.writes) == written
        # The next reply plays normally, with no resume.
        await h.push(OutputAudioRawFrame(audio=tone(100), sample_rate=24000, num_channels=1))
        await clock.advance(0.2)
    assert len(output.writes) == written + 5 and output.interruptions == 1
    assert not h.down_recorder.of_type(TTSTextFrame)
    assert len(h.down_recorder.of_type(BotStartedSpeakingFrame)) == 2


async def test_end_while_paused_plays_out_what_is_held_then_ends() -> None:
    clock = FakeClock()
    output = RecordingOutput(TransportParams(audio_out_chunk_ms=40, audio_out_lead_ms=100))
    async with PipelineHarness(output, clock=clock) as h:
        await h.push(OutputAudioRawFrame(audio=numbered_chunks(10), sample_rate=24000, num_channels=1))
        await h.push(TTSTextFrame(text="the last words"))
        await clock.advance(0.1)
        await h.push(BotOutputPauseFrame())
        await clock.advance(1.0)
        held = len(output.writes)
        # The session ends while the bot is held: the End resumes it, the rest plays, then the End.
        await h.task.stop_when_done()
        await clock.advance(0.1)
        assert not h.down_recorder.of_type(EndFrame) and not output.paused
        await clock.advance(0.5)
        await h.down_recorder.wait_for(EndFrame)
    assert held < 10 and [chunk[0] for _, chunk in output.writes] == list(range(10))
    assert h.down_recorder.of_type(TTSTextFrame) and h.down_recorder.of_type(BotStoppedSpeakingFrame)


async def test_cancel_while_paused_does_not_hang() -> None:
    clock = FakeClock()
    output = RecordingOutput(TransportParams(audio_out_chunk_ms=40, audio_out_lead_ms=100))
    harness = PipelineHarness(output, clock=clock)
    await harness.__aenter__()
    await harness.push(OutputAudioRawFrame(audio=numbered_chunks(10), sample_rate=24000, num_channels=1))
    await clock.advance(0.1)
    await harness.push(BotOutputPauseFrame())
    await clock.advance(0.5)
    await harness.cancel()
    assert len(output.writes) < 10 and not output.paused


def click_at_end(ms: int, rate: int) -> bytes:
    """Silence with a loud burst in its last 5 ms: the part a resampler holds back."""
    samples = np.zeros(rate * ms // 1000, dtype="<i2")
    samples[-rate // 200 :] = 12000
    return samples.tobytes()


async def test_a_reply_at_another_rate_plays_all_of_it_before_the_next_one() -> None:
    clock = FakeClock()
    params = TransportParams(audio_out_sample_rate=8000, audio_out_chunk_ms=20, audio_out_lead_ms=40)
    output = RecordingOutput(params)
    async with PipelineHarness(output, clock=clock) as h:
        await h.push(TTSAudioRawFrame(audio=click_at_end(500, 16000), sample_rate=16000, num_channels=1))
        await h.push(TTSStoppedFrame())
        await clock.advance(1.0)
        await h.down_recorder.wait_for(BotStoppedSpeakingFrame)
        first = b"".join(chunk for _, chunk in output.writes)
        await h.push(TTSAudioRawFrame(audio=bytes(16000), sample_rate=16000, num_channels=1))  # 0.5 s
        await h.push(TTSStoppedFrame())
        await clock.advance(1.0)
        await h.down_recorder.wait_for(TTSStoppedFrame, count=2)
        second = b"".join(chunk for _, chunk in output.writes)[len(first) :]
    assert len(first) == 8000  # all 0.5 s of it, at 8 kHz
    assert np.abs(np.frombuffer(first, dtype="<i2")[-40:]).max() > 6000  # the burst came out with it
    assert len(second) == 8000 and not any(second)  # nothing of the first reply carried over
    played = b"".join(f.audio for f in h.down_recorder.of_type(TTSAudioRawFrame))
    assert played == first + second  # what went on (to the context) is what was heard


async def test_an_interruption_leaves_nothing_of_the_old_reply_to_play_later() -> None:
    clock = FakeClock()
    params = TransportParams(audio_out_sample_rate=8000, audio_out_chunk_ms=20, audio_out_lead_ms=40)
    output = RecordingOutput(params)
    async with PipelineHarness(output, clock=clock) as h:
        loud = np.full(8000, 12000, dtype="<i2").tobytes()  # 0.5 s at 16 kHz
        await h.push(TTSAudioRawFrame(audio=loud, sample_rate=16000, num_channels=1))
        await clock.advance(0.2)
        await h.push(InterruptionFrame())
        await h.down_recorder.wait_for(BotStoppedSpeakingFrame)
        written = len(output.writes)
        await h.push(TTSAudioRawFrame(audio=bytes(8000), sample_rate=16000, num_channels=1))
        await h.push(TTSStoppedFrame())
        await clock.advance(1.0)
        await h.down_recorder.wait_for(TTSStoppedFrame)
    after = b"".join(chunk for _, chunk in output.writes[written:])
    assert len(after) == 4000 and not any(after)  # just the new reply's 0.25 s of silence
