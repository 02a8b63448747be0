"""The emulated input audio buffer as state: the audio since the last commit, its place in the session's
audio, the server VAD and the speech item in progress. Pure (no I/O): the client event handlers in
:mod:`._input_audio` ask it what happened and send the events.

Positions are session audio time, as the API reports them: the milliseconds of all audio appended
since the session began, not just what the buffer holds now.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ._audio import BYTES_PER_MS, EnergyVAD, VADEdge, duration_ms
from ._responses import new_id

_DEFAULT_THRESHOLD = 0.5
_DEFAULT_SILENCE_MS = 500
_DEFAULT_PADDING_MS = 300
_SPARE_MS = 100  # kept beyond the prefix padding while nobody speaks


@dataclass
class Speech:
    """A turn the VAD has closed (or a commit): the item it becomes and its audio."""

    item_id: str
    audio: bytes


@dataclass
class SpeechStarted:
    """The VAD heard speech: the item it will become, and its ``audio_start_ms`` (with the padding)."""

    item_id: str
    audio_start_ms: int


@dataclass
class SpeechStopped:
    """The VAD heard the speech end (``audio_end_ms``, after the silence): the turn leaves the buffer."""

    speech: Speech
    audio_end_ms: int


@dataclass
class InputBuffer:
    vad: EnergyVAD | None = None  # None: no turn detection (the client commits)
    _audio: bytearray = field(default_factory=bytearray)
    _start: int = 0  # session audio position (bytes) of _audio[0]
    _speech_item: str | None = None
    _speech_start_ms: int = 0

    def configure(self, turn_detection: dict[str, Any] | None) -> None:
        """Follow the session's ``audio.input.turn_detection`` (the VAD keeps its clock across updates)."""
        if turn_detection is None:
            self.vad = None
            return
        server_vad = turn_detection["type"] == "server_vad"
        options = turn_detection if server_vad else {}
        if self.vad is None:
            self.vad = EnergyVAD()
        self.vad.threshold = _or(options.get("threshold"), _DEFAULT_THRESHOLD)
        self.vad.silence_duration_ms = _or(options.get("silence_duration_ms"), _DEFAULT_SILENCE_MS)
        self.vad.prefix_padding_ms = _or(options.get("prefix_padding_ms"), _DEFAULT_PADDING_MS)

    @property
    def ms(self) -> int:
        return duration_ms(self._audio)

    def append(self, pcm: bytes) -> list[SpeechStarted | SpeechStopped]:
        """Add audio; returns what the VAD heard in it, in order (nothing without turn detection)."""
        self._audio.extend(pcm)
        if self.vad is None:
            return []
        heard: list[SpeechStarted | SpeechStopped] = []
        for edge in self.vad.feed(pcm):
            if edge.kind == "started":
                heard.append(self._speech_started(edge))
            else:
                heard.append(SpeechStopped(self._speech_stopped(edge), edge.at_ms))
        if not self.vad.speaking:  # keep only what a later speech start could need as padding
            keep = (self.vad.prefix_padding_ms + _SPARE_MS) * BYTES_PER_MS
            if len(self._audio) > 2 * keep:
                self._drop(len(self._audio) - keep)
        return heard

    def _speech_started(self, edge: VADEdge) -> SpeechStarted:
        padding = self.vad.prefix_padding_ms if self.vad is not None else 0
        start = max(edge.at_ms - padding, self._start // BYTES_PER_MS)
        self._speech_item, self._speech_start_ms = new_id("item"), start
        return SpeechStarted(self._speech_item, start)

    def _speech_stopped(self, edge: VADEdge) -> Speech:
        item_id = self._speech_item or new_id("item")
        start_byte = max(0, self._speech_start_ms * BYTES_PER_MS - self._start)
        end_byte = max(0, edge.at_ms * BYTES_PER_MS - self._start)
        audio = bytes(self._audio[start_byte:end_byte])
        self._drop(end_byte)
        self._speech_item = None
        return Speech(item_id, audio)

    def commit(self) -> Speech:
        """The client commits: everything buffered is one item."""
        audio = bytes(self._audio)
        item_id = self._speech_item or new_id("item")
        self.clear()
        return Speech(item_id, audio)

    def clear(self) -> None:
        self._drop(len(self._audio))
        self._speech_item = None
        if self.vad is not None:
            self.vad.reset()

    def _drop(self, nbytes: int) -> None:
        del self._audio[:nbytes]
        self._start += nbytes


def _or(value: Any, default: Any) -> Any:
    return default if value is None else value
