"""End-of-turn detection from the sound of speech: the Smart Turn v3 model on onnxruntime.

Smart Turn (by Daily, BSD-2-Clause) is a Whisper-tiny encoder with a small classifier head: given the last
8 s of a user's speech (16 kHz mono) as an 80-bin Whisper-style log-mel spectrogram, it says how likely the
user has finished their turn. Intonation, a trailing "and" or "um", a cut-off phrase all read as "not done".

The model file (``smart-turn-v3.2-cpu.onnx``, 8.7 MB, int8) ships inside the ``pipecat-ai`` wheel on PyPI,
which ``make`` installs with ``--no-deps`` as a plain model carrier (see the README). It is found by path
through the distribution's file list (``importlib.metadata``): nothing of that package is imported or run.
The feature extraction below is voxloop's own, in numpy.

Cost: one prediction takes 10-60 ms of CPU depending on the machine, so it runs off the event loop
(:meth:`SmartTurnModel.predict` is blocking; :class:`voxloop.turns.SmartTurnDetector` calls it in a thread).
One ONNX session per process and file, shared by every session, like the VAD's.
"""

from __future__ import annotations

import importlib.metadata
from functools import cache
from pathlib import Path
from typing import Any

import numpy as np

from ._onnx import shared_session

SAMPLE_RATE = 16000
WINDOW_SECS = 8
"""The model sees the last 8 s of the turn (shorter audio is padded with silence in front)."""

_N_FFT = 400  # 25 ms
_HOP = 160  # 10 ms
_N_MELS = 80
_FRAMES = WINDOW_SECS * SAMPLE_RATE // _HOP  # 800
_MODEL_FILE = "pipecat/audio/turn/smart_turn/data/smart-turn-v3.2-cpu.onnx"
_CARRIER = "pipecat-ai"


def default_model_path() -> Path:
    """Where the Smart Turn v3.2 model installed with the ``pipecat-ai`` wheel lives (not imported)."""
    hint = (
        "the Smart Turn model comes inside the pipecat-ai wheel, installed as a model carrier only: "
        "pip install --no-deps pipecat-ai==1.14.0 (make does this), or pass model_path="
    )
    try:
        dist = importlib.metadata.distribution(_CARRIER)
    except importlib.metadata.PackageNotFoundError:
        raise FileNotFoundError(hint) from None
    for file in dist.files or ():
        if str(file) == _MODEL_FILE:
            path = Path(str(dist.locate_file(file)))
            if path.is_file():
                return path
    raise FileNotFoundError(f"{_CARRIER} is installed but has no {_MODEL_FILE}; {hint}")


def _check_model(key: Path, session: Any) -> None:
    inputs = session.get_inputs()
    if len(inputs) != 1 or list(inputs[0].shape[1:]) != [_N_MELS, _FRAMES]:
        shapes = [(i.name, i.shape) for i in inputs]
        raise ValueError(f"{key} is not a Smart Turn v3 model (inputs {shapes})")


# -- features ------------------------------------------------------------------------------------------


def _hz_to_mel(hz: np.ndarray) -> np.ndarray:
    """The Slaney mel scale (linear below 1 kHz, logarithmic above), as Whisper's filters use."""
    hz = np.asarray(hz, dtype=np.float64)
    mel = hz / (200.0 / 3)
    log_region = hz >= 1000.0
    mel[log_region] = 15.0 + np.log(hz[log_region] / 1000.0) / (np.log(6.4) / 27.0)
    return mel


def _mel_to_hz(mel: np.ndarray) -> np.ndarray:
    mel = np.asarray(mel, dtype=np.float64)
    hz = mel * (200.0 / 3)
    log_region = mel >= 15.0
    hz[log_region] = 1000.0 * np.exp((np.log(6.4) / 27.0) * (mel[log_region] - 15.0))
    return hz


@cache
def mel_filters() -> np.ndarray:
    """(80, 201) triangular filters over 0-8 kHz, each normalised to unit area (Slaney norm), float64."""
    fft_hz = np.linspace(0.0, SAMPLE_RATE / 2, _N_FFT // 2 + 1)
    edges = _mel_to_hz(np.linspace(_hz_to_mel(np.array([0.0]))[0], _hz_to_mel(np.array([8000.0]))[0], 82))
    lower, centre, upper = edges[:-2, None], edges[1:-1, None], edges[2:, None]
    rising = (fft_hz - lower) / (centre - lower)
    falling = (upper - fft_hz) / (upper - centre)
    weights: np.ndarray = np.maximum(0.0, np.minimum(rising, falling))
    weights *= 2.0 / (upper - lower)  # equal area per filter
    return weights


@cache
def _window() -> np.ndarray:
    n = np.arange(_N_FFT)
    window: np.ndarray = 0.5 - 0.5 * np.cos(2 * np.pi * n / _N_FFT)  # periodic Hann
    return window


def features(audio: np.ndarray) -> np.ndarray:
    """The model's input for one clip: ``(80, 800)`` float32 log-mel of the last 8 s of ``audio``.

    ``audio``: float samples in -1..1 at 16 kHz. The clip is normalised to zero mean and unit variance,
    padded with zeros in front to 8 s (or cut to its last 8 s), framed with a 25 ms Hann window every 10 ms
    (centred, reflected at the edges, the last frame dropped), and its power spectrum mapped to 80 mel bands,
    then ``log10``, floored 8 (80 dB) below the peak and scaled as Whisper does: ``(x + 4) / 4``.
    """
    # In float64 throughout: the int8 model is sensitive to input changes of 1e-6 (its dynamic quantisation
    # rounds differently), so float32 arithmetic here moved probabilities by up to 0.05.
    samples = np.asarray(audio, dtype=np.float64).reshape(-1)[-WINDOW_SECS * SAMPLE_RATE :]
    if samples.size:
        samples = (samples - samples.mean()) / np.sqrt(samples.var() + 1e-7)
    padded = np.zeros(WINDOW_SECS * SAMPLE_RATE, dtype=np.float64)
    padded[padded.size - samples.size :] = samples
    framed = np.pad(padded, _N_FFT // 2, mode="reflect")
    frames = np.lib.stride_tricks.sliding_window_view(framed, _N_FFT)[::_HOP][:_FRAMES]
    spectrum = np.fft.rfft(frames * _window(), axis=1)
    power = spectrum.real**2 + spectrum.imag**2
    mel = mel_filters() @ power.T
    log_mel = np.log10(np.maximum(mel, 1e-10))
    log_mel = np.maximum(log_mel, log_mel.max() - 8.0)
    result: np.ndarray = ((log_mel + 4.0) / 4.0).astype(np.float32)
    return result


class SmartTurnModel:
    """Probability that a user has finished speaking, from the audio of their turn.

    Args:
        model_path: the ONNX file (default: :func:`default_model_path`).
    """

    def __init__(self, model_path: str | Path | None = None) -> None:
        self._session = shared_session(
            Path(model_path) if model_path is not None else default_model_path(), _check_model
        )
        self._input = self._session.get_inputs()[0].name

    def probability_of_features(self, feats: np.ndarray) -> float:
        """Run the model on ``(80, 800)`` features (blocking)."""
        (out,) = self._session.run(None, {self._input: feats[np.newaxis].astype(np.float32)})
        return float(np.asarray(out).reshape(-1)[0])

    def predict(self, audio: np.ndarray | bytes) -> float:
        """Probability (0..1) that the turn in ``audio`` (int16 PCM bytes, or floats) is over. Blocking."""
        if isinstance(audio, bytes | bytearray | memoryview):
            samples = np.frombuffer(audio, dtype="<i2").astype(np.float32) / 32768.0
        else:
            samples = np.asarray(audio, dtype=np.float32)
        return self.probability_of_features(features(samples))
