"""Convert 16-bit PCM between sample rates and channel counts, chunk by chunk.

Resampling is streamed: filter state is kept between chunks, so a stream cut into 16 ms pieces
comes out as smooth as if it had been converted in one go.

Rates are chosen for latency, measured on 20 ms chunks. Going down in rate needs a real
anti-aliasing filter: our own polyphase FIR (:mod:`._polyphase`, soxr "MQ"'s passband and 90 dB of
rejection), which holds back about 5 ms at any pair; soxr's own "MQ" streams in blocks and held
back up to 118 ms (16 -> 8 kHz). Going up cannot alias, and soxr "QQ" (cubic) adds no delay (it
holds back under 0.2 ms).

A stream ends with :meth:`PCMConverter.flush`, which lets out what the filter still holds (the
output does it at the end of each reply, so nothing of one reply plays at the start of the next),
or with :meth:`PCMConverter.reset`, which drops it (an interruption).
"""

from __future__ import annotations

import numpy as np
import soxr  # type: ignore[import-untyped]

from ._polyphase import PolyphaseResampler


def to_mono(audio: bytes, num_channels: int) -> bytes:
    """Average interleaved channels into one (a no-op for mono)."""
    if num_channels == 1:
        return audio
    samples = np.frombuffer(audio, dtype="<i2")
    usable = len(samples) - len(samples) % num_channels
    frames = samples[:usable].reshape(-1, num_channels).astype(np.int32)
    return bytes(frames.mean(axis=1).astype("<i2").tobytes())


def _pcm(samples: np.ndarray) -> bytes:
    return bytes(np.clip(np.rint(samples), -32768, 32767).astype("<i2").tobytes())


class _Upsampler:
    """soxr's cubic interpolation, streamed (the same surface as :class:`PolyphaseResampler`)."""

    def __init__(self, source_rate: int, target_rate: int) -> None:
        self._stream = soxr.ResampleStream(source_rate, target_rate, 1, dtype="float32", quality="QQ")

    def resample(self, samples: np.ndarray) -> np.ndarray:
        return np.asarray(self._stream.resample_chunk(samples.astype(np.float32)))

    def flush(self) -> np.ndarray:
        return np.asarray(self._stream.resample_chunk(np.zeros(0, dtype=np.float32), last=True))


class PCMConverter:
    """Turns a stream of PCM chunks (any rate, any channels) into mono PCM at ``target_rate``.

    One converter per stream: it remembers the filter state, and starts afresh if the incoming
    rate changes (letting out what the old rate held first), so it holds at most one live
    resampler however often a client switches rates. Callers check the declared format first
    (:func:`check_audio_format`).
    """

    def __init__(self, target_rate: int) -> None:
        self.target_rate = target_rate
        self._source_rate = 0
        self._resampler: PolyphaseResampler | _Upsampler | None = None

    def convert(self, audio: bytes, sample_rate: int, num_channels: int) -> bytes:
        mono = to_mono(audio, num_channels)
        if sample_rate == self.target_rate:
            return self.flush() + mono
        head = b""
        if sample_rate != self._source_rate or self._resampler is None:
            head = self.flush()
            self._source_rate = sample_rate
            if sample_rate > self.target_rate:
                self._resampler = PolyphaseResampler(sample_rate, self.target_rate)
            else:
                self._resampler = _Upsampler(sample_rate, self.target_rate)
        return head + _pcm(self._resampler.resample(np.frombuffer(mono, dtype="<i2")))

    def flush(self) -> bytes:
        """Let out what the filter still holds (the end of a stream); the next chunk starts afresh."""
        resampler, self._resampler = self._resampler, None
        self._source_rate = 0
        return b"" if resampler is None else _pcm(resampler.flush())

    def reset(self) -> None:
        """Forget the filter state and what it holds (after an interruption, a new stream starts)."""
        self._resampler = None
        self._source_rate = 0
