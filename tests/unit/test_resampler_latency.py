"""The streaming resampler: little held back, all of it let out at a flush, and clean audio."""

from __future__ import annotations

import numpy as np
import pytest

from voxloop.audio import PCMConverter

DOWN = [(16000, 8000), (24000, 8000), (24000, 16000), (48000, 16000), (48000, 24000)]
UP = [(8000, 16000), (16000, 24000), (16000, 48000), (24000, 48000)]


def stream(
    converter: PCMConverter, samples: np.ndarray, rate: int, chunk_ms: int = 20
) -> tuple[np.ndarray, float]:
    """Feeds ``samples`` in chunks; returns the output and the most it ever held back (in ms)."""
    step = rate * chunk_ms // 1000
    out: list[bytes] = []
    got, worst = 0, 0.0
    for start in range(0, len(samples), step):
        out.append(converter.convert(samples[start : start + step].astype("<i2").tobytes(), rate, 1))
        got += len(out[-1]) // 2
        fed = min(start + step, len(samples))
        worst = max(worst, fed * converter.target_rate / rate - got)
    return np.frombuffer(b"".join(out), dtype="<i2").astype(np.float64), worst * 1000 / converter.target_rate


def noise(rate: int) -> np.ndarray:
    return (np.random.default_rng(1).standard_normal(rate) * 3000).astype(np.int16)


@pytest.mark.parametrize(("source", "target"), DOWN + UP)
def test_the_resampler_holds_back_under_3_ms(source: int, target: int) -> None:
    # soxr's "MQ" held back up to 118 ms (16 -> 8 kHz) in bursts: the end of every reply came late.
    _, worst = stream(PCMConverter(target), noise(source), source)
    assert worst < 3.0


@pytest.mark.parametrize(("source", "target"), DOWN + UP)
def test_a_flush_lets_out_every_sample(source: int, target: int) -> None:
    converter = PCMConverter(target)
    out, _ = stream(converter, noise(source), source)
    total = len(out) + len(converter.flush()) // 2
    assert abs(total - target) <= 1  # one second in, one second out
    assert converter.flush() == b""  # nothing left


@pytest.mark.parametrize(("source", "target"), DOWN)
def test_going_down_keeps_the_speech_band_and_stops_aliasing(source: int, target: int) -> None:
    t = np.arange(source) / source
    converter = PCMConverter(target)
    out, _ = stream(converter, 10000 * np.sin(2 * np.pi * 1000 * t), source)
    out = np.concatenate((out, np.frombuffer(converter.flush(), dtype="<i2")))
    ideal = 10000 * np.sin(2 * np.pi * 1000 * np.arange(len(out)) / target)
    inner = slice(100, len(out) - 100)  # the edges of a tone cut off abruptly ring
    snr = 10 * np.log10(np.sum(ideal[inner] ** 2) / np.sum((out[inner] - ideal[inner]) ** 2))
    assert snr > 50  # in place (no delay, no gain error) and clean

    above = 0.6 * target  # above the target's Nyquist: without a filter it folds back into the band
    folded, _ = stream(PCMConverter(target), 10000 * np.sin(2 * np.pi * above * t), source)
    level_db = 20 * np.log10(np.sqrt(np.mean(folded[inner] ** 2)) / (10000 / np.sqrt(2)))
    assert level_db < -60


def test_a_reset_drops_what_was_held() -> None:
    converter = PCMConverter(8000)
    stream(converter, noise(16000), 16000)
    converter.reset()
    assert converter.flush() == b""
    silence = converter.convert(bytes(640), 16000, 1) + converter.flush()
    assert len(silence) == 320 and not any(silence)  # a fresh stream: none of the old audio
