"""A streaming polyphase FIR resampler for going down in rate, that holds back only its filter's half.

soxr's streaming resampler works in blocks and holds audio back in bursts (its "MQ", on 20 ms
chunks: up to 118 ms at 16 -> 8 kHz, 75 ms at 24 -> 8 kHz, 38 ms at 48 -> 16 kHz). This one emits
every output sample as soon as the input it needs has arrived, so what it holds back is the
lookahead of its linear-phase filter: a few milliseconds, the same on every chunk.

The filter is a Kaiser-windowed sinc designed like soxr "MQ" where it matters for speech
recognition: flat to 0.93 of the lower rate's Nyquist, 90 dB down from the Nyquist on (Whisper's
log-mel floor is 80 dB under its peak). The transition band is at least 560 Hz wide, which for an
8 kHz target keeps the telephone band (to 3.4 kHz) and halves the filter. Hold-back, for any pair:
``(A - 8) / (2.285 * 2 pi * transition) / 2`` seconds, about 5 ms.

Output sample ``n`` is the input signal at time ``n / target_rate`` (the filter's delay is
compensated), so a clip resampled in any chunking, then flushed, has ``ceil(len * L / M)`` samples.
"""

from __future__ import annotations

import math
from functools import lru_cache

import numpy as np

__all__ = ["PolyphaseResampler", "hold_back_secs"]

ATTENUATION_DB = 90.0
PASSBAND = 0.93  # of the lower rate's Nyquist
MIN_TRANSITION_HZ = 560.0
_FEW_PHASES = 12  # L * M up to this: strided correlations (16 -> 8, 24 -> 16, 48 -> 16 kHz ...)
_GATHER_BLOCK = 32  # outputs per gather otherwise: bounds the memory a chunk of any size takes


@lru_cache(maxsize=32)
def _design(source_rate: int, target_rate: int) -> tuple[int, int, int, np.ndarray]:
    """(L, M, centre, bank): up by L, down by M; ``bank[r]`` holds phase ``r``'s taps in time order,
    and ``centre`` is the filter's delay in samples at ``L * source_rate``. Shared by every stream."""
    gcd = math.gcd(source_rate, target_rate)
    up, down = target_rate // gcd, source_rate // gcd
    nyquist = min(source_rate, target_rate) / 2
    transition = max((1 - PASSBAND) * nyquist, MIN_TRANSITION_HZ)
    fine_rate = up * source_rate
    width = 2 * math.pi * transition / fine_rate  # radians per sample at the fine rate
    count = math.ceil((ATTENUATION_DB - 7.95) / (2.285 * width)) | 1  # odd: a whole-sample delay
    centre = (count - 1) // 2
    cutoff = (nyquist - transition / 2) / fine_rate  # cycles per sample; -6 dB there
    n = np.arange(count) - centre
    beta = 0.1102 * (ATTENUATION_DB - 8.7)
    taps = 2 * cutoff * np.sinc(2 * cutoff * n) * np.kaiser(count, beta)
    taps *= up / taps.sum()  # unity gain at DC, after the L-fold zero stuffing
    per_phase = (count - 1) // up + 1
    padded = np.zeros(per_phase * up)
    padded[:count] = taps
    bank = padded.reshape(per_phase, up).T[:, ::-1]  # bank[r, k]: taps r + j * L, newest sample last
    return up, down, centre, np.ascontiguousarray(bank, dtype=np.float32)  # float32: half the memory traffic


def hold_back_secs(source_rate: int, target_rate: int) -> float:
    """How much audio a stream at this pair holds back, at most (the filter's lookahead)."""
    up, _, centre, _ = _design(source_rate, target_rate)
    return centre / (up * source_rate)


class PolyphaseResampler:
    """One stream from ``source_rate`` to ``target_rate``; :meth:`resample` chunk by chunk, then
    :meth:`flush` at the stream's end (which makes it ready for a new stream)."""

    def __init__(self, source_rate: int, target_rate: int) -> None:
        self._up, self._down, self._centre, self._bank = _design(source_rate, target_rate)
        self._taps = self._bank.shape[1]
        self._start()

    def _start(self) -> None:
        self._buffer = np.zeros(self._taps - 1, dtype=np.float32)  # the silence before the stream starts
        self._first = -(self._taps - 1)  # absolute index of _buffer[0]
        self._received = 0  # input samples so far
        self._emitted = 0  # output samples so far

    def resample(self, samples: np.ndarray) -> np.ndarray:
        """Every output sample the input so far allows (float32, not rounded)."""
        self._buffer = np.concatenate((self._buffer, samples.astype(np.float32)))
        self._received += len(samples)
        # output n needs input up to (n * M + centre) // L
        ready = (self._received * self._up - self._centre + self._down - 1) // self._down
        return self._emit(max(ready, self._emitted))

    def flush(self) -> np.ndarray:
        """The rest of the stream (its end followed by silence); then a new stream starts."""
        total = -(-self._received * self._up // self._down)  # outputs inside the input's duration
        last = ((total - 1) * self._down + self._centre) // self._up  # newest input it needs
        pad = last - (self._first + len(self._buffer)) + 1
        if pad > 0:
            self._buffer = np.concatenate((self._buffer, np.zeros(pad, dtype=np.float32)))
        out = self._emit(max(total, self._emitted))
        self._start()
        return out

    def _emit(self, end: int) -> np.ndarray:
        count = end - self._emitted
        up, down, taps = self._up, self._down, self._taps
        if count == 0:
            return np.zeros(0, dtype=np.float32)
        out = np.zeros(count, dtype=np.float32)
        if up * down <= _FEW_PHASES:
            # Outputs L apart share a phase and step M inputs: per phase, M strided correlations.
            for group in range(min(up, count)):
                fine = (self._emitted + group) * down + self._centre
                start = fine // up - (taps - 1) - self._first
                rows = len(range(group, count, up))
                for offset in range(down):
                    weights = self._bank[fine % up, offset::down]
                    signal = self._buffer[start + offset :: down][: rows + len(weights) - 1]
                    out[group::up] += np.correlate(signal, weights, mode="valid")
        else:  # many phases (22.05 or 44.1 kHz): gather each output's window and phase
            windows = np.lib.stride_tricks.sliding_window_view(self._buffer, taps)
            # In blocks: the gathered windows cost taps * 4 bytes per output (1.8 kB at 44.1 kHz).
            for first in range(0, count, _GATHER_BLOCK):
                fines = np.arange(first, min(first + _GATHER_BLOCK, count)) + self._emitted
                fines = fines * down + self._centre
                rows_of = windows[fines // up - (taps - 1) - self._first]
                out[first : first + len(fines)] = np.einsum("ij,ij->i", rows_of, self._bank[fines % up])
        self._emitted = end
        keep_from = min(((end * down + self._centre) // up) - (taps - 1) - self._first, len(self._buffer))
        self._buffer = self._buffer[keep_from:]
        self._first += keep_from
        return out
