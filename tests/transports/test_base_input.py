from __future__ import annotations

import numpy as np

from voxloop.frames import (
    InputAudioRawFrame,
    InputTransportMessageFrame,
    InputTransportStartAudioStreamingFrame,
)
from voxloop.testing import PipelineHarness
from voxloop.transports.base_input import BaseInputTransport
from voxloop.transports.params import TransportParams


def sine(rate: int, seconds: float, channels: int = 1, freq: float = 440.0) -> bytes:
    t = np.arange(int(rate * seconds)) / rate
    mono = (np.sin(2 * np.pi * freq * t) * 8000).astype("<i2")
    return np.repeat(mono, channels).tobytes()


def dominant_frequency(pcm: bytes, rate: int) -> float:
    samples = np.frombuffer(pcm, dtype="<i2").astype(float)
    spectrum = np.abs(np.fft.rfft(samples))
    return float(np.fft.rfftfreq(len(samples), 1 / rate)[spectrum.argmax()])


async def test_any_client_audio_becomes_mono_at_the_pipeline_rate() -> None:
    transport = BaseInputTransport(TransportParams())
    async with PipelineHarness(transport) as h:
        stereo_48k = sine(48000, 1.0, channels=2)
        for start in range(0, len(stereo_48k), 3840):  # 20 ms pieces
            await transport.push_audio(stereo_48k[start : start + 3840], 48000, 2)
        await h.down_recorder.wait_for(InputAudioRawFrame)
    frames = h.down_recorder.of_type(InputAudioRawFrame)
    assert {(f.sample_rate, f.num_channels) for f in frames} == {(16000, 1)}
    pcm = b"".join(f.audio for f in frames)
    assert 15000 * 2 < len(pcm) <= 16000 * 2  # about one second (the resampler holds a few ms back)
    assert abs(dominant_frequency(pcm, 16000) - 440) < 5  # the tone survived


async def test_messages_go_up_and_injected_audio_takes_the_audio_path() -> None:
    transport = BaseInputTransport(TransportParams())
    async with PipelineHarness(transport) as h:
        await transport.push_message({"label": "rtvi-ai", "type": "client-ready"})
        await h.up_recorder.wait_for(InputTransportMessageFrame)
        await h.push(InputAudioRawFrame(audio=sine(16000, 0.1), sample_rate=16000, num_channels=1))
        await h.down_recorder.wait_for(InputAudioRawFrame)
    assert h.up_recorder.of_type(InputTransportMessageFrame)[0].message["type"] == "client-ready"
    assert not h.down_recorder.of_type(InputTransportMessageFrame)


async def test_audio_waits_for_the_client_when_asked() -> None:
    transport = BaseInputTransport(TransportParams(audio_in_stream_on_start=False))
    async with PipelineHarness(transport) as h:
        await transport.push_audio(sine(16000, 0.1), 16000, 1)  # before the client is ready: dropped
        await h.push(InputTransportStartAudioStreamingFrame())
        await h.down_recorder.wait_for(InputTransportStartAudioStreamingFrame)
        await transport.push_audio(sine(16000, 0.1), 16000, 1)
        await h.down_recorder.wait_for(InputAudioRawFrame)
    assert len(h.down_recorder.of_type(InputAudioRawFrame)) == 1
