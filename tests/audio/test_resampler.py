"""The streaming resampler: little held back on every chunk, all of it let out at a flush, dropped at
a reset, and audio as clean as soxr's own filters."""

from __future__ import annotations

import numpy as np
import pytest
import soxr

from helpers.paths import AUDIO
from voxloop.audio import PCMConverter
from voxloop.testing import load_wav

DOWN = [(16000, 8000), (22050, 8000), (24000, 8000), (24000, 16000), (48000, 16000), (44100, 16000)]
DOWN += [(48000, 24000)]
UP = [(8000, 16000), (16000, 24000), (22050, 24000), (24000, 48000)]


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


def noise(rate: int, seconds: float = 1.0) -> np.ndarray:
    return (np.random.default_rng(1).standard_normal(int(rate * seconds)) * 3000).astype(np.int16)


@pytest.mark.parametrize(("source", "target"), DOWN)
def test_going_down_holds_back_under_6_ms_on_every_chunk(source: int, target: int) -> None:
    # soxr "MQ" held back up to 118 ms (16 -> 8 kHz), 75 ms (24 -> 8) and 38 ms (48 -> 16) in bursts.
    for chunk_ms in (10, 20, 40):
        _, worst = stream(PCMConverter(target), noise(source, 2.0), source, chunk_ms)
        assert worst < 6.0, (chunk_ms, worst)


@pytest.mark.parametrize(("source", "target"), UP)
def test_going_up_holds_back_under_a_millisecond(source: int, target: int) -> None:
    _, worst = stream(PCMConverter(target), noise(source), source)
    assert worst < 1.0


@pytest.mark.parametrize(("source", "target"), DOWN + UP)
def test_a_flush_lets_out_every_sample(source: int, target: int) -> None:
    converter = PCMConverter(target)
    out, _ = stream(converter, noise(source), source)
    total = len(out) + len(converter.flush()) // 2
    assert abs(total - target) <= 1  # one second in, one second out
    assert converter.flush() == b""  # nothing left


@pytest.mark.parametrize(("source", "target"), [(16000, 8000), (48000, 16000), (22050, 8000)])
def test_a_flushed_stream_is_the_clip_in_one_go_whatever_the_chunks(source: int, target: int) -> None:
    samples = noise(source)
    whole = PCMConverter(target)
    one_go = whole.convert(samples.tobytes(), source, 1) + whole.flush()
    for chunk_ms in (7, 20):
        converter = PCMConverter(target)
        out, _ = stream(converter, samples, source, chunk_ms)
        chunked = np.concatenate((out, np.frombuffer(converter.flush(), dtype="<i2")))
        assert np.abs(chunked - np.frombuffer(one_go, dtype="<i2")).max() <= 1  # float rounding


@pytest.mark.parametrize(("source", "target"), DOWN)
def test_going_down_keeps_the_band_in_place_and_stops_aliasing(source: int, target: int) -> None:
    t = np.arange(source) / source
    converter = PCMConverter(target)
    out, _ = stream(converter, 10000 * np.sin(2 * np.pi * 1000 * t), source)
    out = np.concatenate((out, np.frombuffer(converter.flush(), dtype="<i2")))
    ideal = 10000 * np.sin(2 * np.pi * 1000 * np.arange(len(out)) / target)
    inner = slice(200, len(out) - 200)  # the edges of a tone cut off abruptly ring
    snr = 10 * np.log10(np.sum(ideal[inner] ** 2) / np.sum((out[inner] - ideal[inner]) ** 2))
    assert snr > 50  # no delay, no gain error, clean

    for above in (1.05, 1.5):  # above the target's Nyquist: unfiltered, it folds back into the band
        tone = 10000 * np.sin(2 * np.pi * above * target / 2 * t)
        folded, _ = stream(PCMConverter(target), tone, source)
        level_db = 20 * np.log10(np.sqrt(np.mean(folded[inner] ** 2)) / (10000 / np.sqrt(2)) + 1e-12)
        assert level_db < -80


def test_going_down_to_16_khz_keeps_the_band_whisper_hears() -> None:
    # As soxr "MQ" did: flat to 0.93 of the Nyquist (7.44 kHz), so the speech Whisper gets is the same.
    t = np.arange(48000) / 48000
    for hz in (4000, 7000, 7440):
        out, _ = stream(PCMConverter(16000), 10000 * np.sin(2 * np.pi * hz * t), 48000)
        gain_db = 20 * np.log10(np.sqrt(2 * np.mean(out[400:-400] ** 2)) / 10000)
        assert abs(gain_db) < 0.1, (hz, gain_db)


@pytest.mark.parametrize("name", ["utt01_weather", "utt03_order"])
def test_speech_going_down_from_48_khz_is_what_soxr_very_high_quality_makes(name: str) -> None:
    pcm, rate, _ = load_wav(AUDIO / f"{name}.wav")
    mic = soxr.resample(np.frombuffer(pcm, dtype="<i2").astype(np.float64), rate, 48000, quality="VHQ")
    converter = PCMConverter(16000)
    out, _ = stream(converter, np.clip(mic, -32768, 32767), 48000)
    out = np.concatenate((out, np.frombuffer(converter.flush(), dtype="<i2")))
    ideal = soxr.resample(mic, 48000, 16000, quality="VHQ")
    assert len(out) == len(ideal)
    snr = 10 * np.log10(np.sum(ideal**2) / np.sum((out - ideal) ** 2))
    assert snr > 50  # what differs is the top 7% of the band and int16 rounding


def test_a_reset_drops_what_was_held() -> None:
    converter = PCMConverter(8000)
    stream(converter, noise(16000), 16000)
    converter.reset()
    assert converter.flush() == b""
    silence = converter.convert(bytes(640), 16000, 1) + converter.flush()
    assert len(silence) == 320 and not any(silence)  # a fresh stream: none of the old audio


def test_a_new_rate_lets_out_what_the_old_one_held_first() -> None:
    converter = PCMConverter(8000)
    out, _ = stream(converter, noise(16000), 16000)
    switched = converter.convert(bytes(480), 24000, 1)  # 10 ms at 24 kHz
    tail = converter.flush()
    assert abs(len(out) + (len(switched) + len(tail)) // 2 - 8080) <= 2
    assert np.abs(np.frombuffer(switched, dtype="<i2")).max() > 1000  # the old stream's end came first
