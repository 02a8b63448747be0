"""The OpenAI Realtime emulator wired in for the realtime bot's tests, and the shared WAVs they speak."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import pytest

from helpers.paths import AUDIO
from voxloop.testing import load_wav
from voxloop.testing.realtime_emulator import RealtimeEmulator


@asynccontextmanager
async def emulated_openai(monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[RealtimeEmulator]:
    """A running emulator that every OpenAI client made inside the block talks to."""
    async with RealtimeEmulator() as emulator:
        assert emulator.api_key is not None
        monkeypatch.setenv("OPENAI_API_KEY", emulator.api_key)
        monkeypatch.setenv("OPENAI_BASE_URL", emulator.base_url)
        yield emulator


def utterance(name: str) -> bytes:
    """The PCM of a shared test utterance (``utt01_weather.wav``...): 16 kHz mono, as a mic sends it."""
    pcm, rate, channels = load_wav(AUDIO / name)
    assert (rate, channels) == (16000, 1)
    return pcm
