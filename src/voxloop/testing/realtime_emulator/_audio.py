"""Audio for the emulator: a simple energy VAD for the input buffer, and a synthetic voice for replies.

Everything is PCM16 mono at 24 kHz, the Realtime API's ``audio/pcm`` format. The voice is not speech: it
is a deterministic buzz with a speech-like rhythm (a pitched harmonic tone shaped into syllables, one
group per word, pauses between words and after punctuation), long enough to be proportional to the
text, loud enough to trip a VAD, and free of any GPL speech engine.
"""

from __future__ import annotations

import math
import re
import zlib
from dataclasses import dataclass, field
from typing import Literal

import numpy as np

SAMPLE_RATE = 24_000
BYTES_PER_MS = SAMPLE_RATE * 2 // 1000  # 48
FRAME_MS = 10
_FRAME_BYTES = FRAME_MS * BYTES_PER_MS
_START_MS = 60  # speech needs this long above the threshold before it counts as started


def duration_ms(pcm: bytes | bytearray) -> int:
    return len(pcm) // BYTES_PER_MS


def frame_level_db(frame: bytes | bytearray) -> float:
    samples = np.frombuffer(frame, dtype="<i2").astype(np.float64) / 32768.0
    if samples.size == 0:
        return -120.0
    rms = math.sqrt(float(np.mean(samples * samples)))
    return 20.0 * math.log10(rms) if rms > 1e-6 else -120.0


def threshold_db(threshold: float) -> float:
    """The energy level (dBFS) a 10 ms frame must exceed to count as speech, for a server_vad threshold in
    0..1: 0 -> -60 dBFS (very sensitive), the default 0.5 -> -35 dBFS, 1 -> -10 dBFS (shouting)."""
    return -60.0 + 50.0 * min(1.0, max(0.0, threshold))


@dataclass
class VADEdge:
    kind: Literal["started", "stopped"]
    at_ms: int  # session audio time (ms of all audio appended so far) of the edge, as the API reports it


@dataclass
class EnergyVAD:
    """Frame-energy turn detection with the server_vad knobs.

    ``started`` is reported at the speech onset minus ``prefix_padding_ms`` (the API's ``audio_start_ms``
    includes the padding); ``stopped`` once ``silence_duration_ms`` of silence has followed speech, at the
    end of that silence (the API's ``audio_end_ms`` includes it too). Times are session audio time.
    """

    threshold: float = 0.5
    prefix_padding_ms: int = 300
    silence_duration_ms: int = 500
    speaking: bool = False
    _pending: bytearray = field(default_factory=bytearray)
    _position_ms: int = 0
    _run_ms: int = 0  # current run of speech (when silent) or of silence (when speaking)
    _run_start_ms: int = 0

    def feed(self, pcm: bytes) -> list[VADEdge]:
        self._pending.extend(pcm)
        edges: list[VADEdge] = []
        limit = threshold_db(self.threshold)
        while len(self._pending) >= _FRAME_BYTES:
            frame = bytes(self._pending[:_FRAME_BYTES])
            del self._pending[:_FRAME_BYTES]
            loud = frame_level_db(frame) > limit
            if loud != self.speaking:
                if self._run_ms == 0:
                    self._run_start_ms = self._position_ms
                self._run_ms += FRAME_MS
            else:
                self._run_ms = 0
            self._position_ms += FRAME_MS
            if not self.speaking and self._run_ms >= _START_MS:
                self.speaking, self._run_ms = True, 0
                edges.append(VADEdge("started", self._run_start_ms))
            elif self.speaking and self._run_ms >= self.silence_duration_ms:
                self.speaking, self._run_ms = False, 0
                edges.append(VADEdge("stopped", self._position_ms))
        return edges

    def reset(self) -> None:
        """Forget any speech in progress (after a commit or clear); the session clock keeps running."""
        self.speaking, self._run_ms = False, 0


_WORD = re.compile(r"\S+")


@dataclass(frozen=True)
class SpokenWord:
    text: str  # as it appears in the transcript delta, with its leading space
    start_ms: int
    end_ms: int  # including the pause after it


def synthesize(
    text: str, *, style: Literal["speech", "tone"] = "speech", ms_per_char: int = 60
) -> tuple[bytes, list[SpokenWord]]:
    """PCM16 24 kHz audio "saying" ``text``, and where each word of it lies in that audio."""
    chunks: list[np.ndarray] = []
    words: list[SpokenWord] = []
    position = 0
    for index, match in enumerate(_WORD.finditer(text)):
        word = match.group(0)
        voiced_ms = max(120, ms_per_char * len(word))
        pause_ms = 220 if word[-1] in ".,;:!?" else 70
        voiced = _tone(voiced_ms) if style == "tone" else _voiced(word, voiced_ms)
        samples = np.concatenate([voiced, np.zeros(pause_ms * SAMPLE_RATE // 1000, dtype=np.float64)])
        chunks.append(samples)
        delta = word if index == 0 else text[_previous_end(text, match.start()) : match.end()]
        end = position + voiced_ms + pause_ms
        words.append(SpokenWord(delta, position, end))
        position = end
    if not chunks:
        return b"", []
    audio = np.clip(np.concatenate(chunks), -1.0, 1.0)
    return (audio * 32767.0).astype("<i2").tobytes(), words


def _previous_end(text: str, start: int) -> int:
    """Index just after the previous word, so a delta carries the whitespace before its word."""
    end = start
    while end > 0 and text[end - 1].isspace():
        end -= 1
    return end


def _tone(ms: int) -> np.ndarray:
    t = np.arange(ms * SAMPLE_RATE // 1000) / SAMPLE_RATE
    ramp = np.minimum(1.0, np.minimum(t, t[-1] - t) / 0.01) if t.size > 1 else np.ones_like(t)
    return 0.3 * np.sin(2 * math.pi * 440.0 * t) * ramp


def _voiced(word: str, ms: int) -> np.ndarray:
    """A pitched harmonic buzz with one amplitude hump per syllable and a gently falling pitch."""
    seed = zlib.crc32(word.lower().encode())
    n = ms * SAMPLE_RATE // 1000
    t = np.arange(n) / SAMPLE_RATE
    f0 = 105.0 + (seed % 50) - 15.0 * t / max(t[-1], 1e-3)
    phase = 2 * math.pi * np.cumsum(f0) / SAMPLE_RATE
    formant = 500.0 + (seed >> 8) % 600
    signal = np.zeros(n)
    for harmonic in range(1, 16):
        freq = 120.0 * harmonic
        weight = math.exp(-(((freq - formant) / 350.0) ** 2)) + 0.25 / harmonic
        signal += weight * np.sin(harmonic * phase)
    syllables = max(1, len(re.findall(r"[aeiouy]+", word.lower())))
    envelope = np.abs(np.sin(math.pi * syllables * t / max(t[-1], 1e-3))) ** 0.6
    shaped: np.ndarray = 0.3 * signal / max(float(np.max(np.abs(signal))), 1e-9) * envelope
    return shaped


def split_chunks(pcm: bytes, chunk_ms: int) -> list[bytes]:
    size = max(1, chunk_ms) * BYTES_PER_MS
    return [pcm[i : i + size] for i in range(0, len(pcm), size)]
