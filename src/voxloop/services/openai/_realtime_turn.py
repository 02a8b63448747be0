"""The user's side of the Realtime conversation, as state: the turn, its transcription, the calls that
wait for it, and the camera's pace.

- :class:`TurnState`: whether the user aggregator's turn is open, whether the bot is speaking, and
  whether committed audio still waits for an answer.
- :class:`InputTranscripts`: the server's transcription of each input item, delta by delta.
- :class:`PendingCalls`: function calls the model made while the user's turn was still being written
  (the server answers before the user aggregator wrote the words; a call started at once would land in
  the context before the question that asked for it).
- :class:`ImageThrottle`: at most one camera image per interval.

Pure state, no I/O.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from ._realtime_actions import Call

_MAX_TRANSCRIPTS = 64
_NS_PER_S = 1_000_000_000


@dataclass
class TurnState:
    user_turn_open: bool = False  # between the user aggregator's UserStarted/StoppedSpeaking frames
    bot_speaking: bool = False  # between the output transport's BotStarted/StoppedSpeaking frames
    unanswered_audio: bool = False  # committed input audio no response has been asked for yet
    responded_since_input: bool = False  # a response was asked for since the last committed audio

    def audio_committed(self) -> None:
        self.unanswered_audio = True
        self.responded_since_input = False

    def answered(self) -> None:
        """A response was asked for (or created by the server): the input so far is answered."""
        self.unanswered_audio = False
        self.responded_since_input = True


@dataclass
class InputTranscripts:
    """Transcription so far per input item (a bounded memory: items whose transcription never ends go)."""

    _texts: dict[str, str] = field(default_factory=dict)

    def delta(self, item_id: str, delta: str) -> str:
        """Add a delta; returns the item's transcription so far."""
        text = self._texts.get(item_id, "") + delta
        self._texts[item_id] = text
        if len(self._texts) > _MAX_TRANSCRIPTS:
            self._texts.pop(next(iter(self._texts)))
        return text

    def end(self, item_id: str) -> None:
        self._texts.pop(item_id, None)

    def __len__(self) -> int:
        return len(self._texts)


@dataclass
class PendingCalls:
    """Calls waiting for the user's turn to be written."""

    _calls: list[Call] = field(default_factory=list)

    def defer(self, calls: list[Call]) -> None:
        self._calls.extend(calls)

    def take(self) -> list[Call]:
        calls, self._calls = self._calls, []
        return calls

    def __len__(self) -> int:
        return len(self._calls)


@dataclass
class ImageThrottle:
    interval_secs: float
    _last_ns: int | None = None

    def due(self, now_ns: int) -> bool:
        """Whether an image may go now (and if so, the next one waits ``interval_secs`` from now)."""
        if self._last_ns is not None and now_ns - self._last_ns < self.interval_secs * _NS_PER_S:
            return False
        self._last_ns = now_ns
        return True
