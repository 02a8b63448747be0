"""Convert 16-bit PCM between sample rates and channel counts, chunk by chunk.

Resampling uses soxr's streaming resampler, which keeps filter state between chunks, so a stream
cut into 16 ms pieces comes out as smooth as if it had been converted in one go.
"""

from __future__ import annotations

import numpy as np
import soxr  # type: ignore[import-untyped]


def to_mono(audio: bytes, num_channels: int) -> bytes:
    """Average interleaved channels into one (a no-op for mono)."""
    if num_channels == 1:
        return audio
    samples = np.frombuffer(audio, dtype="<i2")
    usable = len(samples) - len(samples) % num_channels
    frames = samples[:usable].reshape(-1, num_channels).astype(np.int32)
    return bytes(frames.mean(axis=1).astype("<i2").tobytes())


class PCMConverter:
    """Turns a stream of PCM chunks (any rate, any channels) into mono PCM at ``target_rate``.

    One converter per stream: it remembers the filter state, and starts afresh if the incoming
    rate changes.
    """

    def __init__(self, target_rate: int) -> None:
        self.target_rate = target_rate
        self._source_rate = 0
        self._stream: soxr.ResampleStream | None = None

    def convert(self, audio: bytes, sample_rate: int, num_channels: int) -> bytes:
        mono = to_mono(audio, num_channels)
        if sample_rate == self.target_rate:
            return mono
        if sample_rate != self._source_rate or self._stream is None:
            self._source_rate = sample_rate
            self._stream = soxr.ResampleStream(sample_rate, self.target_rate, 1, dtype="int16")
        samples = np.frombuffer(mono, dtype="<i2")
        out: np.ndarray = self._stream.resample_chunk(samples)
        return out.astype("<i2").tobytes()

    def reset(self) -> None:
        """Forget the filter state (after an interruption, a new stream starts)."""
        self._stream = None
        self._source_rate = 0
