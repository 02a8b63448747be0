"""Speech with a thinking pause in it, for tests and benchmarks of turn-taking (espeak-ng, offline)."""

from __future__ import annotations

import numpy as np

from ..services.local import shared_speech_worker
from ..services.local.speech_engines import WordMark


async def spoken_with_pause(text: str, before_word: str, pause_secs: float, *, rate: int = 16000) -> bytes:
    """``text`` said in one go, with ``pause_secs`` of silence inserted just before ``before_word``.

    The sentence is synthesised whole, so the words before the pause keep the intonation of a sentence
    that goes on (synthesising the fragment alone would end it like a finished statement); the silence
    goes where the engine says the word starts.
    """
    import soxr  # type: ignore[import-untyped]

    worker = shared_speech_worker("espeak")
    info = await worker.start()
    at = text.index(before_word)
    pcm = bytearray()
    cut: int | None = None
    async with await worker.synthesize(text, {"rate": 140}) as request:
        async for item in request:
            if isinstance(item, bytes):
                pcm += item
            elif isinstance(item, WordMark) and item.start <= at < item.end + 1 and cut is None:
                cut = item.sample
    if cut is None:
        raise ValueError(f"no word mark for {before_word!r} in {text!r}")
    samples = np.frombuffer(bytes(pcm), dtype="<i2")
    # The mark can fall a little into the word: cut at the quietest 5 ms within the 100 ms before it.
    window, span = round(0.005 * info.sample_rate), round(0.1 * info.sample_rate)
    start = max(0, cut - span)
    energy = np.convolve(np.square(samples[start:cut].astype(np.float64)), np.ones(window), mode="valid")
    if energy.size:
        cut = start + int(np.argmin(energy)) + window // 2
    gap = np.zeros(round(pause_secs * info.sample_rate), dtype="<i2")
    joined = np.concatenate((samples[:cut], gap, samples[cut:]))
    resampled = soxr.resample(joined, info.sample_rate, rate, quality="HQ")
    return np.asarray(resampled, dtype="<i2").tobytes()
