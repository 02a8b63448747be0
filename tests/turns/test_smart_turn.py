"""Smart Turn v3.2: our feature extraction against a reference written independently here, on the real model.

The reference follows the published recipe (Whisper's log-mel: 25 ms periodic Hann window every 10 ms,
centred with reflection, power spectrum, 80 Slaney mel bands over 0-8 kHz with unit-area triangles,
log10, an 80 dB floor under the peak, (x + 4) / 4; the clip normalised to zero mean and unit variance
and padded with zeros in front to 8 s) in plain loops and an explicit DFT matrix, sharing no code with
``voxloop.audio.smart_turn``. The model must give the same probability on both, on real speech.
"""

from __future__ import annotations

import math
from functools import cache

import numpy as np
import pytest

from helpers.paths import AUDIO as SHARED_AUDIO
from helpers.speech import silence, spoken
from voxloop.audio import smart_turn
from voxloop.audio.smart_turn import SmartTurnModel, features
from voxloop.testing import load_wav

RATE, N_FFT, HOP, MELS, SECONDS = 16000, 400, 160, 80, 8


def slaney_mel(hz: float) -> float:
    return hz * 3 / 200 if hz < 1000 else 15 + 27 * math.log(hz / 1000) / math.log(6.4)


def slaney_hz(mel: float) -> float:
    return mel * 200 / 3 if mel < 15 else 1000 * math.exp((mel - 15) * math.log(6.4) / 27)


@cache
def reference_filters() -> np.ndarray:
    top = slaney_mel(RATE / 2)
    points = [slaney_hz(top * i / (MELS + 1)) for i in range(MELS + 2)]
    bins = [k * RATE / N_FFT for k in range(N_FFT // 2 + 1)]
    filters = np.zeros((MELS, len(bins)))
    for m in range(MELS):
        low, mid, high = points[m], points[m + 1], points[m + 2]
        for k, f in enumerate(bins):
            if low < f <= mid:
                filters[m, k] = (f - low) / (mid - low)
            elif mid < f < high:
                filters[m, k] = (high - f) / (high - mid)
        filters[m] *= 2 / (high - low)
    return filters


@cache
def dft_matrices() -> tuple[np.ndarray, np.ndarray]:
    n = np.arange(N_FFT)
    k = np.arange(N_FFT // 2 + 1)[:, None]
    return np.cos(2 * np.pi * k * n / N_FFT), -np.sin(2 * np.pi * k * n / N_FFT)


def reference_features(samples: np.ndarray) -> np.ndarray:
    x = np.asarray(samples, dtype=np.float64)[-SECONDS * RATE :]
    x = (x - x.mean()) / math.sqrt(x.var() + 1e-7)
    clip = np.concatenate([np.zeros(SECONDS * RATE - len(x)), x])
    half = N_FFT // 2
    padded = np.concatenate([clip[half:0:-1], clip, clip[-2 : -half - 2 : -1]])  # reflection at both ends
    window = np.array([0.5 * (1 - math.cos(2 * math.pi * i / N_FFT)) for i in range(N_FFT)])
    frames = np.stack([padded[t * HOP : t * HOP + N_FFT] * window for t in range(SECONDS * RATE // HOP)])
    cos, sin = dft_matrices()
    power = (cos @ frames.T) ** 2 + (sin @ frames.T) ** 2
    logmel = np.log10(np.clip(reference_filters() @ power, 1e-10, None))
    logmel = np.maximum(logmel, logmel.max() - 8)
    return ((logmel + 4) / 4).astype(np.float32)


@pytest.fixture(scope="module")
def model() -> SmartTurnModel:
    return SmartTurnModel()


def as_float(pcm: bytes) -> np.ndarray:
    return np.frombuffer(pcm, dtype="<i2").astype(np.float32) / 32768


async def test_the_model_gives_the_same_answers_on_our_features_and_the_reference(
    model, speech_workers
) -> None:
    clips = {
        "question, shared WAV": as_float(load_wav(SHARED_AUDIO / "utt05_joke.wav")[0]),
        "longer than 8 s": as_float(load_wav(SHARED_AUDIO / "vad_two_utts.wav")[0] * 2),
        "trailing um": as_float(await spoken("Tell me, um,") + silence(0.2)),
        "finished statement": as_float(await spoken("four people tonight.") + silence(0.2)),
    }
    results = {}
    for name, clip in clips.items():
        ours, ref = features(clip), reference_features(clip)
        assert ours.shape == ref.shape == (80, 800), name
        assert np.max(np.abs(ours - ref)) < 1e-6, name
        results[name] = (model.probability_of_features(ours), model.probability_of_features(ref))
        assert results[name][0] == pytest.approx(results[name][1], abs=1e-4), name
    # And the answers mean something: a trailing filler is unfinished, a finished statement is final.
    assert results["trailing um"][0] < 0.2 < 0.8 < results["finished statement"][0], results


def test_a_missing_model_carrier_says_how_to_install_it(monkeypatch) -> None:
    monkeypatch.setattr(smart_turn, "_CARRIER", "no-such-distribution-voxloop")
    with pytest.raises(FileNotFoundError, match="pip install --no-deps pipecat-ai"):
        smart_turn.default_model_path()


def test_the_model_file_is_found_by_path_without_importing_its_carrier() -> None:
    import sys

    path = smart_turn.default_model_path()
    assert path.name == "smart-turn-v3.2-cpu.onnx" and path.stat().st_size == 8_679_182
    assert "pipecat" not in sys.modules
