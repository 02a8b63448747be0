"""What one turn of a conversation was made of, pieced together from the frames that mark it.

A :class:`Turn` runs from the user's first word to the end of the bot's reply (played out, or cut off
by the next turn). It holds the moments the voice-to-voice latency is made of and the service
intervals inside it (speech segments, turn detection, transcription, LLM responses, speech synthesis,
function calls), each with its attributes. Times are pipeline-clock nanoseconds; nothing here knows
about OpenTelemetry or Prometheus: :mod:`voxloop.telemetry._session` turns a finished turn into spans
and histograms.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

AttrValue = str | int | float | bool

#: The critical path of a turn, in order: each latency segment ends at its milestone.
MILESTONES = (
    ("turn_detection", "user_stopped_ns"),  # end of speech -> the turn is over (transcripts included)
    ("llm", "first_llm_text_ns"),  # -> the LLM's first words (function calls included)
    ("tts", "first_tts_audio_ns"),  # -> the first synthesized audio
    ("output", "bot_started_ns"),  # -> the output transport starts playing it
)


@dataclass
class Interval:
    """One service's work inside a turn: ``kind`` (stt, llm, tts, function...), start and end."""

    kind: str
    name: str
    start_ns: int
    end_ns: int = 0
    attributes: dict[str, AttrValue] = field(default_factory=dict)
    events: list[tuple[str, int]] = field(default_factory=list)
    error: str | None = None

    @property
    def duration_ns(self) -> int:
        return max(0, self.end_ns - self.start_ns)


@dataclass
class Turn:
    number: int
    start_ns: int
    end_ns: int = 0
    speech_end_ns: int | None = None  # when the user's last word ended (the VAD stop minus its delay)
    user_stopped_ns: int | None = None  # the turn-taking decided the user was done
    first_llm_text_ns: int | None = None
    first_tts_audio_ns: int | None = None
    bot_started_ns: int | None = None
    interrupted: bool = False
    reply_done: bool = False  # the assistant aggregator reported the reply over
    user_text: list[str] = field(default_factory=list)
    bot_text: str = ""
    intervals: list[Interval] = field(default_factory=list)
    errors: list[tuple[str, int]] = field(default_factory=list)

    @property
    def responding(self) -> bool:
        """The user is done and the bot is thinking or speaking: speech now interrupts it."""
        return self.user_stopped_ns is not None

    def voice_to_voice_ns(self) -> int | None:
        if self.speech_end_ns is None or self.bot_started_ns is None:
            return None
        return self.bot_started_ns - self.speech_end_ns

    def latency_segments_ns(self) -> dict[str, int]:
        """The voice-to-voice latency split along :data:`MILESTONES`; the parts add up to the whole.

        Only milestones on the critical path count: one the turn did not pass (no LLM text from a
        speech-to-speech model) or passed after a later one (a model with its own turn detection
        answered before voxloop's turn end) is skipped, and its time counts in the next part.
        """
        if self.voice_to_voice_ns() is None or self.speech_end_ns is None:
            return {}
        passed = [(name, at) for name, attr in MILESTONES if (at := getattr(self, attr)) is not None]
        on_path: list[tuple[str, int]] = []
        for name, at in reversed(passed):  # keep a milestone only if no later one came before it
            if not on_path or at <= on_path[-1][1]:
                on_path.append((name, at))
        segments: dict[str, int] = {}
        previous = self.speech_end_ns
        for name, at in reversed(on_path):
            segments[name] = max(0, at - previous)
            previous = max(previous, at)
        return segments

    def words_heard(self) -> int:
        return sum(len(text.split()) for text in self.user_text)

    def words_played(self) -> int:
        return len(self.bot_text.split())

    def attributes(self) -> dict[str, Any]:
        attrs: dict[str, Any] = {
            "voxloop.turn.number": self.number,
            "voxloop.turn.interrupted": self.interrupted,
            "voxloop.turn.user_words": self.words_heard(),
            "voxloop.turn.bot_words": self.words_played(),
        }
        total = self.voice_to_voice_ns()
        if total is not None:
            attrs["voxloop.latency.voice_to_voice_ms"] = round(total / 1e6, 3)
            for name, value in self.latency_segments_ns().items():
                attrs[f"voxloop.latency.{name}_ms"] = round(value / 1e6, 3)
        return attrs
