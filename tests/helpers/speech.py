"""Spoken test utterances, rendered on the fly by the espeak-ng worker (as the shared WAVs were made).

espeak-ng at 140 words per minute, resampled to 16 kHz with soxr's high quality, is what Whisper tiny.en
transcribes exactly (see the offline-models reference); it is deterministic, so the tests are too.
"""

from __future__ import annotations

import numpy as np
import soxr

from voxloop.services.local import shared_speech_worker
from voxloop.testing.speech import spoken_with_pause  # shared with bench/voice.py


async def spoken(text: str, *, rate: int = 16000, wpm: int = 140, engine: str = "espeak") -> bytes:
    """``text`` as mono int16 PCM at ``rate`` (``engine``: "espeak", or "piper" for a natural voice)."""
    worker = shared_speech_worker(engine)
    info = await worker.start()
    pcm = bytearray()
    settings = {"rate": wpm} if engine == "espeak" else {}
    async with await worker.synthesize(text, settings) as request:
        async for item in request:
            if isinstance(item, bytes):
                pcm += item
    samples = np.frombuffer(bytes(pcm), dtype="<i2")
    resampled = soxr.resample(samples, info.sample_rate, rate, quality="HQ")
    return np.asarray(resampled, dtype="<i2").tobytes()


__all__ = ["silence", "spoken", "spoken_with_pause"]


def silence(seconds: float, rate: int = 16000) -> bytes:
    return bytes(2 * round(seconds * rate))
