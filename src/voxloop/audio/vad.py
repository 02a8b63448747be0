"""Streaming voice activity detection with the Silero VAD model on onnxruntime (no torch).

The model is the Silero VAD v6 ONNX file that ships inside the ``faster-whisper`` package
(``faster_whisper/assets/silero_vad_v6.onnx``, MIT), which the local speech-to-text needs anyway, so the
VAD costs no extra download. It is found by path with ``importlib.util.find_spec``, without importing
faster-whisper (that import pulls in CTranslate2 and PyAV). Model hubs are never contacted.

The model is a small LSTM at 16 kHz. One step takes 64 samples of context (the end of the previous frame)
plus 512 new samples (32 ms) and the LSTM state ``h``/``c`` (each ``(1, 1, 128)``), and returns the
probability that the frame holds speech plus the new state. Carrying the state frame by frame gives
exactly the numbers that a whole-file batch run gives.

Cost: one step takes about 0.18 ms on one core (real-time factor about 0.006, measured on 2 vCPUs),
so :meth:`SileroVAD.analyze` may run inline on the event loop: each call blocks for well under a
millisecond per 32 ms of audio. With many sessions per process, or large chunks, run it with
``asyncio.to_thread`` instead. One ONNX session is created per process and model file, and shared by every
:class:`SileroVAD`; each instance keeps its own LSTM state, so instances are independent, but one
instance must not be used from two threads at once.
"""

from __future__ import annotations

import importlib.util
import math
from collections import deque
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np

from ._onnx import shared_session

FRAME_SAMPLES = 512
"""Samples per model step at 16 kHz (32 ms)."""

_CONTEXT_SAMPLES = 64
_STATE_SHAPE = (1, 1, 128)
_SAMPLE_RATE = 16000
_LEVEL_FLOOR_DB = -60.0
_HYSTERESIS = 0.25


def default_model_path() -> Path:
    """Where the Silero VAD model bundled with faster-whisper lives (found without importing it)."""
    spec = importlib.util.find_spec("faster_whisper")
    if spec is None or spec.origin is None:
        raise ModuleNotFoundError(
            "the Silero VAD model comes from the faster-whisper package: pip install 'voxloop[local]'"
        )
    path = Path(spec.origin).parent / "assets" / "silero_vad_v6.onnx"
    if not path.is_file():
        raise FileNotFoundError(f"faster-whisper is installed but has no Silero VAD model at {path}")
    return path


def _check_model(key: Path, session: Any) -> None:
    names = sorted(i.name for i in session.get_inputs())
    if names != ["c", "h", "input"]:
        raise ValueError(f"{key} is not a Silero VAD model with inputs input/h/c (it has {names})")


def rms_level(frame: np.ndarray | bytes) -> float:
    """Loudness of a frame in 0..1: its RMS in dB full scale, mapped linearly from -60 dBFS (0) to 0 dBFS (1).

    So 0.25 is -45 dBFS (a very quiet room or a far, soft voice), 0.5 is -30 dBFS (normal speech on a
    headset is around -30 to -20 dBFS) and 1 is a full-scale square wave. Accepts int16 PCM (bytes or
    array) or floats in -1..1.
    """
    samples = _as_float(frame)
    if samples.size == 0:
        return 0.0
    rms = math.sqrt(float(np.mean(np.square(samples, dtype=np.float64))))
    if rms <= 0.0:
        return 0.0
    db = 20.0 * math.log10(rms)
    return min(1.0, max(0.0, (db - _LEVEL_FLOOR_DB) / -_LEVEL_FLOOR_DB))


def _as_float(frame: np.ndarray | bytes) -> np.ndarray:
    if isinstance(frame, bytes | bytearray | memoryview):
        return np.frombuffer(frame, dtype="<i2").astype(np.float32) / 32768.0
    if frame.dtype == np.int16:
        return frame.astype(np.float32) / 32768.0
    return np.asarray(frame, dtype=np.float32)


@dataclass(frozen=True, slots=True)
class VADEvent:
    """The user started or stopped speaking, or (before those decisions) may be about to.

    - ``started`` / ``stopped``: the decisions, after ``start_secs`` of speech / ``stop_secs`` of silence.
    - ``ending``: while speaking, ``ending_secs`` of silence so far (the stop follows unless speech resumes).
    - ``resumed``: a frame of speech after an ``ending`` (the segment goes on), or one that begins a run
      of speech while quiet (a start may follow, or it was noise).

    ``at_secs`` is the stream time (seconds of audio fed since the start or the last reset) at which
    the decision was made: the end of the frame that completed ``start_secs`` of speech or ``stop_secs``
    of silence. ``edge_secs`` is where that run of speech or silence began, i.e. the estimated speech
    onset (for "started") or end of speech (for "stopped").
    """

    kind: Literal["started", "stopped", "ending", "resumed"]
    at_secs: float
    edge_secs: float


class SileroVAD:
    """Turns a stream of 16 kHz mono int16 PCM into "started" / "stopped" speaking events.

    A 32 ms frame counts as speech when the model's probability is at least ``confidence`` *and* the
    smoothed volume is at least ``min_volume``. The volume is :func:`rms_level`, following rises at once
    and falling by 20 % per frame (so a brief gap between words, which synthetic speech renders as
    digital silence, does not break a run). The gate only drops near-silence (default 0.25 = -45 dBFS):
    the model itself rejects steady noise and hum, and a high gate would cut quiet talkers.

    Speaking starts after ``start_secs`` of speech frames and stops after ``stop_secs`` of consecutive
    non-speech frames; both are rounded up to whole frames. With ``ending_secs`` (shorter than
    ``stop_secs``), it also says when a pause inside speech has lasted that long ("ending") and when speech
    comes back before a decision ("resumed"), so work on the segment can start before the stop.

    On the way in, a frame that is almost speech
    (probability within 0.25 of ``confidence``, loud enough) neither counts nor breaks the run: quiet
    first syllables dip just under the threshold, and breaking the run there found onsets ~0.3 s late.
    """

    def __init__(
        self,
        model_path: str | Path | None = None,
        *,
        sample_rate: int = _SAMPLE_RATE,
        confidence: float = 0.7,
        start_secs: float = 0.2,
        stop_secs: float = 0.8,
        min_volume: float = 0.25,
        ending_secs: float | None = None,
    ) -> None:
        if sample_rate != _SAMPLE_RATE:
            raise ValueError(
                f"Silero VAD here runs at 16000 Hz, got {sample_rate}; resample first (PCMConverter)"
            )
        if not 0.0 <= confidence <= 1.0 or not 0.0 <= min_volume <= 1.0:
            raise ValueError("confidence and min_volume must be within 0..1")
        if start_secs < 0 or stop_secs < 0:
            raise ValueError("start_secs and stop_secs must not be negative")
        self.sample_rate = sample_rate
        self.confidence_threshold = confidence
        self.min_volume = min_volume
        self._session = shared_session(
            Path(model_path) if model_path is not None else default_model_path(), _check_model
        )
        self._start_frames = self.whole_frames(start_secs)
        self._stop_frames = self.whole_frames(stop_secs)
        self.set_ending_secs(ending_secs)
        self._pending = bytearray()
        self.reset()

    @property
    def speaking(self) -> bool:
        """Whether the user is speaking (between a "started" and the following "stopped")."""
        return self._speaking

    @property
    def last_frame_is_speech(self) -> bool:
        """Whether the newest whole frame analysed counted as speech (proof the user is still talking)."""
        return self._last_is_speech

    @property
    def stream_secs(self) -> float:
        """Seconds of audio analysed since the start or the last :meth:`reset` (whole frames only)."""
        return self._frames / self.sample_rate * FRAME_SAMPLES

    def whole_frames(self, seconds: float) -> int:
        """At least ``seconds``, in whole frames (at least one): rounded up, with a little slack so that
        0.8 s is exactly 25 frames."""
        return max(1, math.ceil(seconds / self._frame_secs - 1e-6))

    @property
    def stop_delay_secs(self) -> float:
        """The silence that makes a "stopped", in whole frames."""
        return self._stop_frames * self._frame_secs

    def set_ending_secs(self, ending_secs: float | None) -> None:
        """Silence inside speech after which "ending" is reported (None: never), in whole frames."""
        if ending_secs is not None and ending_secs < 0:
            raise ValueError("ending_secs must not be negative")
        self._ending_frames = None if ending_secs is None else self.whole_frames(ending_secs)

    def reset(self) -> None:
        """Start afresh: a new stream, model state cleared, not speaking, stream time back to 0."""
        self._h = np.zeros(_STATE_SHAPE, dtype=np.float32)
        self._c = np.zeros(_STATE_SHAPE, dtype=np.float32)
        self._context = np.zeros(_CONTEXT_SAMPLES, dtype=np.float32)
        self._pending.clear()
        self._frames = 0
        self._speaking = False
        self._run = 0  # frames that disagree with the current state, since the last that agreed
        self._run_start = 0  # the frame where that run began
        self._volume = 0.0
        self._last_is_speech = False
        self._ending_said = False  # "ending" was reported for the current run of silence

    def confidence(self, frame: np.ndarray | bytes) -> float:
        """Speech probability of exactly one 512-sample frame; advances this instance's model state.

        ``frame`` is int16 PCM (bytes or array) or float samples in -1..1.
        """
        samples = _as_float(frame)
        if samples.shape != (FRAME_SAMPLES,):
            raise ValueError(f"expected one frame of {FRAME_SAMPLES} samples, got shape {samples.shape}")
        model_input = np.concatenate((self._context, samples))[np.newaxis, :]
        probs, self._h, self._c = self._session.run(None, {"input": model_input, "h": self._h, "c": self._c})
        self._context = samples[-_CONTEXT_SAMPLES:].copy()
        return float(np.asarray(probs).reshape(-1)[0])

    def analyze(self, pcm: bytes) -> list[VADEvent]:
        """Feed int16 PCM of any length; returns the events decided by the whole frames now available.

        Leftover samples wait for the next call, so the events do not depend on how the stream is cut.
        """
        self._pending += pcm
        frame_bytes = FRAME_SAMPLES * 2
        events: list[VADEvent] = []
        offset = 0
        while len(self._pending) - offset >= frame_bytes:
            frame = bytes(self._pending[offset : offset + frame_bytes])
            offset += frame_bytes
            self._step(frame, events)
        del self._pending[:offset]
        return events

    def _step(self, frame: bytes, events: list[VADEvent]) -> None:
        probability = self.confidence(frame)
        level = rms_level(frame)
        self._volume = level if level >= self._volume else 0.8 * self._volume + 0.2 * level
        loud = self._volume >= self.min_volume
        is_speech = probability >= self.confidence_threshold and loud
        # A frame that is almost speech does not break a run of speech that is about to start (quiet
        # first syllables dip just under the threshold: without this the onset was found ~0.3 s late).
        # Only on the way in: on the way out it would stretch every segment's end in steady noise.
        almost = probability >= self.confidence_threshold - _HYSTERESIS and loud
        self._last_is_speech = is_speech
        self._frames += 1
        if self._speaking:
            agrees = is_speech  # still speaking
            counts = not agrees
        else:
            agrees = not (is_speech or almost)  # still quiet
            counts = is_speech
        if agrees:
            if self._ending_said:  # speech again before the stop: the segment goes on
                self._ending_said = False
                events.append(VADEvent("resumed", self.stream_secs, self.stream_secs - self._frame_secs))
            self._run = 0
        elif counts:
            if self._run == 0:
                self._run_start = self._frames - 1
                if not self._speaking and self._ending_frames is not None:
                    events.append(VADEvent("resumed", self.stream_secs, self._edge_secs()))
            self._run += 1
        if self._speaking and self._run == self._ending_frames and self._run < self._stop_frames:
            self._ending_said = True
            events.append(VADEvent("ending", self.stream_secs, self._edge_secs()))
        needed = self._stop_frames if self._speaking else self._start_frames
        if self._run < needed:
            return
        self._speaking = not self._speaking
        self._run = 0
        self._ending_said = False
        events.append(
            VADEvent("started" if self._speaking else "stopped", self.stream_secs, self._edge_secs())
        )

    @property
    def _frame_secs(self) -> float:
        return FRAME_SAMPLES / self.sample_rate

    def _edge_secs(self) -> float:
        """Where the current run began (stream seconds)."""
        return self._run_start * self._frame_secs


class PreRoll:
    """Keeps the most recent ``seconds`` of int16 mono PCM, to prepend to speech-to-text at VAD onset.

    The VAD only says "started" ``start_secs`` after the speech began, and the recogniser needs the
    onset (without ~300 ms of pre-roll, small Whisper models garble the first word). Memory is
    bounded: at most ``seconds`` of audio is kept, however the stream is cut.
    """

    def __init__(self, seconds: float = 0.3, sample_rate: int = _SAMPLE_RATE) -> None:
        self.max_bytes = round(seconds * sample_rate) * 2
        self.sample_rate = sample_rate
        self._chunks: deque[bytes] = deque()
        self._size = 0

    def append(self, pcm: bytes) -> None:
        """Add a chunk, dropping the oldest audio beyond the limit."""
        if not pcm or self.max_bytes == 0:
            return
        if len(pcm) >= self.max_bytes:
            self._chunks.clear()
            self._chunks.append(bytes(pcm[len(pcm) - self.max_bytes :]))
            self._size = self.max_bytes
            return
        self._chunks.append(bytes(pcm))
        self._size += len(pcm)
        while self._size > self.max_bytes:
            excess = self._size - self.max_bytes
            oldest = self._chunks[0]
            if len(oldest) <= excess:
                self._chunks.popleft()
                self._size -= len(oldest)
            else:
                self._chunks[0] = oldest[excess:]
                self._size -= excess

    def get(self) -> bytes:
        """The kept audio, oldest first."""
        return b"".join(self._chunks)

    def clear(self) -> None:
        self._chunks.clear()
        self._size = 0

    @property
    def duration_secs(self) -> float:
        return self._size / 2 / self.sample_rate

    def __len__(self) -> int:
        """Bytes kept."""
        return self._size
