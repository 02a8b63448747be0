"""Support for the Realtime service tests (no tests here): speech input, the service against the emulator."""

from __future__ import annotations

import base64
import wave
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import numpy as np

from helpers.paths import AUDIO
from voxloop.context import LLMAssistantAggregator, LLMContext, LLMUserAggregator
from voxloop.frames import Frame, InputAudioRawFrame, TTSTextFrame
from voxloop.pipeline import FrameProcessor, Pipeline, PipelineParams
from voxloop.services.openai import OpenAIRealtimeService, RealtimeSettings
from voxloop.testing import PipelineHarness
from voxloop.testing.realtime_emulator import RealtimeEmulator


def speech_16k(name: str = "utt01_weather.wav", *, lead_ms: int = 300, tail_ms: int = 900) -> bytes:
    """A test utterance (16 kHz mono PCM16) with silence around it: the server VAD needs the tail."""
    with wave.open(str(AUDIO / name), "rb") as wav:
        pcm = wav.readframes(wav.getnframes())
        assert wav.getframerate() == 16000
    return bytes(lead_ms * 32) + pcm + bytes(tail_ms * 32)


def audio_frames(pcm: bytes, chunk_ms: int = 20) -> list[Frame]:
    size = chunk_ms * 32
    return [InputAudioRawFrame(pcm[i : i + size], 16000, 1) for i in range(0, len(pcm), size)]


def appended_bytes(emu: RealtimeEmulator) -> int:
    return sum(
        len(base64.b64decode(e.data["audio"]))
        for e in emu.client_events_of("input_audio_buffer.append")
        if e.data
    )


def spoken_text(frames: list[Frame]) -> str:
    """What the TTSTextFrames say (they carry their own spaces)."""
    return "".join(f.text for f in frames if isinstance(f, TTSTextFrame)).strip()


def loud_16k(ms: int) -> bytes:
    """A loud buzz the emulator's energy VAD takes for speech."""
    t = np.arange(ms * 16) / 16000
    return (np.sin(2 * np.pi * 220 * t) * 12000).astype("<i2").tobytes()


@asynccontextmanager
async def running_service(
    emu: RealtimeEmulator,
    *,
    context: LLMContext | None = None,
    settings: RealtimeSettings | None = None,
    aggregators: bool = False,
    clock: Any = None,
    wait_ready: bool = True,
    **options: Any,
) -> AsyncIterator[tuple[OpenAIRealtimeService, PipelineHarness]]:
    """The service in a harness (optionally between a user and an assistant aggregator)."""
    service = OpenAIRealtimeService(
        api_key=emu.api_key, base_url=emu.base_url, settings=settings, context=context, **options
    )
    processor: FrameProcessor = service
    if aggregators:
        assert context is not None
        processor = Pipeline([LLMUserAggregator(context), service, LLMAssistantAggregator(context)])
    params = PipelineParams(enable_metrics=True, enable_usage_metrics=True)
    async with PipelineHarness(processor, params=params, clock=clock) as harness:
        if wait_ready:
            await service.wait_until_ready(10)
        yield service, harness
