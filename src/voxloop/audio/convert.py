"""Convert 16-bit PCM between sample rates and channel counts, chunk by chunk.

Resampling is streamed: filter state is kept between chunks, so a stream cut into 16 ms pieces
comes out as smooth as if it had been converted in one go.

Quality is chosen for latency. soxr's own filters hold back a lot of audio in a stream, in bursts
(measured on 20 ms chunks, worst case: "MQ" 16 -> 8 kHz 118 ms, 24 -> 8 kHz 75 ms, 48 -> 16 kHz
38 ms; "LQ" 16 -> 8 kHz 61 ms). So going down in rate, the anti-aliasing filter is our own short
linear-phase FIR (Kaiser window, passband to 0.42 of the target rate, about 60 dB from its Nyquist
on), followed by soxr's "QQ" (cubic, no delay). It holds back its half-length: under 3 ms at any
rate. Going up cannot alias, and "QQ" alone adds no delay at all.

What the filter holds back is let out by :meth:`PCMConverter.flush` (the end of a reply), and
dropped by :meth:`PCMConverter.reset` (an interruption).
"""

from __future__ import annotations

import math

import numpy as np
import soxr  # type: ignore[import-untyped]

_PASSBAND = 0.42  # of the target rate; the stopband starts at its Nyquist (0.5)
_ATTENUATION_DB = 60.0


def to_mono(audio: bytes, num_channels: int) -> bytes:
    """Average interleaved channels into one (a no-op for mono)."""
    if num_channels == 1:
        return audio
    samples = np.frombuffer(audio, dtype="<i2")
    usable = len(samples) - len(samples) % num_channels
    frames = samples[:usable].reshape(-1, num_channels).astype(np.int32)
    return bytes(frames.mean(axis=1).astype("<i2").tobytes())


def _anti_alias_taps(source_rate: int, target_rate: int) -> np.ndarray:
    """A Kaiser-windowed sinc low-pass at ``source_rate`` for going down to ``target_rate``."""
    width = (0.5 - _PASSBAND) * target_rate / source_rate  # transition band, cycles per sample
    cutoff = (0.5 + _PASSBAND) / 2 * target_rate / source_rate
    count = math.ceil((_ATTENUATION_DB - 8) / (2.285 * 2 * math.pi * width)) | 1  # odd: whole delay
    beta = 0.1102 * (_ATTENUATION_DB - 8.7)
    n = np.arange(count) - (count - 1) / 2
    taps = 2 * cutoff * np.sinc(2 * cutoff * n) * np.kaiser(count, beta)
    return np.asarray(taps / taps.sum())


class _Resampler:
    """One rate change, streamed: for going down, the FIR low-pass then cubic interpolation."""

    def __init__(self, source_rate: int, target_rate: int) -> None:
        self._taps = _anti_alias_taps(source_rate, target_rate) if target_rate < source_rate else None
        size = 0 if self._taps is None else len(self._taps)
        self.delay = size // 2  # input samples the filter holds back (it is linear-phase)
        self._history = np.zeros(max(size - 1, 0))
        self._skip = self.delay  # the filter's first outputs are its onset, not audio
        self._cubic = soxr.ResampleStream(source_rate, target_rate, 1, dtype="float32", quality="QQ")

    def resample(self, samples: np.ndarray, last: bool = False) -> bytes:
        x = samples.astype(np.float64)
        if self._taps is not None:
            if last:
                x = np.concatenate((x, np.zeros(self.delay)))
            window = np.concatenate((self._history, x))
            self._history = window[len(window) - len(self._history) :]
            x = np.convolve(window, self._taps, mode="valid")
            skipped = min(self._skip, len(x))
            x, self._skip = x[skipped:], self._skip - skipped
        out = self._cubic.resample_chunk(x.astype(np.float32), last=last)
        return bytes(np.clip(np.rint(out), -32768, 32767).astype("<i2").tobytes())


class PCMConverter:
    """Turns a stream of PCM chunks (any rate, any channels) into mono PCM at ``target_rate``.

    One converter per stream: it remembers the filter state, and starts afresh if the incoming
    rate changes, so it holds at most one live resampler however often a client switches rates.
    Callers check the declared format first (:func:`check_audio_format`).
    """

    def __init__(self, target_rate: int) -> None:
        self.target_rate = target_rate
        self._source_rate = 0
        self._resampler: _Resampler | None = None

    def convert(self, audio: bytes, sample_rate: int, num_channels: int) -> bytes:
        mono = to_mono(audio, num_channels)
        if sample_rate == self.target_rate:
            return mono
        head = b""
        if sample_rate != self._source_rate or self._resampler is None:
            head = self.flush()  # what the old rate still held comes first
            self._source_rate = sample_rate
            self._resampler = _Resampler(sample_rate, self.target_rate)
        return head + self._resampler.resample(np.frombuffer(mono, dtype="<i2"))

    def flush(self) -> bytes:
        """Lets out the audio still held in the filter (end of a stream); the next chunk starts
        a fresh one."""
        resampler, self._resampler = self._resampler, None
        self._source_rate = 0
        if resampler is None:
            return b""
        return resampler.resample(np.zeros(0, dtype="<i2"), last=True)

    def reset(self) -> None:
        """Forget the filter state and what it held (after an interruption, a new stream starts)."""
        self._resampler = None
        self._source_rate = 0
