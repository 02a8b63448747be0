"""The WebRTC transport's bot-audio path, without a network: buffer, track pacing, interruption."""

from __future__ import annotations

import asyncio

import numpy as np

from voxloop.frames import InterruptionFrame, TTSAudioRawFrame
from voxloop.testing import FakeClock, PipelineHarness
from voxloop.transports._webrtc_connection import FRAME_BYTES, AudioOutBuffer
from voxloop.transports.webrtc import OutputAudioTrack, WebRTCConnection, WebRTCParams, WebRTCTransport


def tone(ms: int, rate: int = 24000, hz: float = 440.0) -> bytes:
    t = np.arange(rate * ms // 1000) / rate
    return (np.sin(2 * np.pi * hz * t) * 8000).astype("<i2").tobytes()


async def test_track_plays_the_buffer_in_20_ms_frames_then_silence() -> None:
    buffer = AudioOutBuffer()
    buffer.write(b"\x01\x00" * 960 + b"\x02\x00" * 480)  # 30 ms at 48 kHz
    track = OutputAudioTrack(buffer)
    loop = asyncio.get_running_loop()
    start = loop.time()
    frames = [await track.recv() for _ in range(4)]
    elapsed = loop.time() - start
    pcm = [f.to_ndarray().tobytes() for f in frames]
    assert all(len(p) == FRAME_BYTES for p in pcm) and [f.sample_rate for f in frames] == [48000] * 4
    assert pcm[0] == b"\x01\x00" * 960
    assert pcm[1] == b"\x02\x00" * 480 + b"\0" * 960  # the rest, padded with silence
    assert pcm[2] == pcm[3] == b"\0" * FRAME_BYTES  # idle: silence, still on time
    assert [f.pts for f in frames] == [0, 960, 1920, 2880]
    assert 0.055 <= elapsed < 1.0  # frames 1..3 are due at 20, 40, 60 ms: real time, not a burst
    track.stop()


def test_buffer_is_bounded_and_keeps_the_newest_audio() -> None:
    buffer = AudioOutBuffer(max_secs=0.1)
    buffer.write(b"\x01\x00" * 4800)
    buffer.write(b"\x02\x00" * 480)
    assert len(buffer) == buffer.max_bytes == 9600
    assert buffer.take(9600)[-960:] == b"\x02\x00" * 480


async def test_bot_audio_is_resampled_into_the_track_and_dropped_on_interruption() -> None:
    connection = WebRTCConnection()
    transport = WebRTCTransport(connection, WebRTCParams(audio_out_lead_ms=100, audio_out_chunk_ms=40))
    clock = FakeClock()
    async with PipelineHarness(transport.output(), clock=clock) as h:
        await h.push(TTSAudioRawFrame(audio=tone(400), sample_rate=24000, num_channels=1))
        await clock.advance(0.05)
        buffered = len(connection.audio_out)
        # 100 ms lead, 40 ms chunks: by 50 ms the chunks due by 150 ms are out (160 ms, at 48 kHz,
        # less the resampler's few samples of delay); nothing has been played yet.
        assert 48000 * 2 * 150 // 1000 <= buffered <= 48000 * 2 * 160 // 1000
        await h.push(InterruptionFrame())
        await clock.advance(0.01)
        assert len(connection.audio_out) == 0
    await connection.close()
