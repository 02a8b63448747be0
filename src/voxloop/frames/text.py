"""Text frames: what the user said, what the LLM wrote, what the TTS speaks."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from ._base import ControlFrame, DataFrame, SystemFrame


@dataclass(eq=False)
class TextFrame(DataFrame):
    """A piece of text.

    ``skip_tts``: do not speak it; ``includes_inter_frame_spaces``: the spaces between pieces are
    already in the text (LLM tokens), so join pieces as they are; ``append_to_context``: the
    assistant aggregator keeps it.
    """

    text: str
    skip_tts: bool | None = field(init=False, default=None)
    includes_inter_frame_spaces: bool = field(init=False, default=False)
    append_to_context: bool = field(init=False, default=True)


@dataclass(eq=False)
class LLMTextFrame(TextFrame):
    """A streamed LLM token or chunk (spaces included)."""

    includes_inter_frame_spaces: bool = field(init=False, default=True)


class AggregationType(StrEnum):
    """How text was grouped before speaking."""

    SENTENCE = "sentence"
    WORD = "word"
    TOKEN = "token"


@dataclass(eq=False)
class AggregatedTextFrame(TextFrame):
    """Text grouped into a unit (sentence, word, ...) on its way to the TTS.

    ``will_be_spoken`` is set by the TTS just before it speaks the text.
    """

    aggregated_by: AggregationType | str = AggregationType.SENTENCE
    context_id: str | None = None
    will_be_spoken: bool = field(init=False, default=False)


@dataclass(eq=False)
class TTSTextFrame(AggregatedTextFrame):
    """Text the TTS actually spoke, released in step with its audio."""


@dataclass(eq=False)
class AggregatedTextProgressFrame(DataFrame):
    """How far the bot has got speaking a segment (word timings): spoken and still to come."""

    segment_id: int
    text: str
    accumulated_text: str
    remaining_text: str
    aggregated_by: AggregationType | str = AggregationType.SENTENCE
    context_id: str | None = None


@dataclass(eq=False)
class TranscriptionFrame(TextFrame):
    """A final transcription of the user's speech."""

    user_id: str = ""
    timestamp: str = ""
    language: str | None = None
    result: Any = None
    finalized: bool = False


@dataclass(eq=False)
class TranscriptionFinishedFrame(SystemFrame):
    """The STT has transcribed everything it was given up to the last VAD stop.

    Pushed after the segment's ``TranscriptionFrame`` (or alone, when the segment held no words), so the
    user aggregator can end the turn as soon as the words are in instead of waiting on a timeout.
    ``text`` is the segment's transcript ("" when nothing was recognised).
    """

    text: str = ""


@dataclass(eq=False)
class InterimTranscriptionFrame(TextFrame):
    """A partial transcription that may still change."""

    user_id: str = ""
    timestamp: str = ""
    language: str | None = None
    result: Any = None


@dataclass(eq=False)
class TranslationFrame(TextFrame):
    """A translation of the user's speech."""

    user_id: str = ""
    timestamp: str = ""
    language: str | None = None


@dataclass(eq=False)
class InputTextRawFrame(SystemFrame, TextFrame):
    """Text typed by the user."""


@dataclass(eq=False)
class TTSSpeakFrame(DataFrame):
    """Ask the TTS to say this text (bypassing the LLM)."""

    text: str
    append_to_context: bool = True


@dataclass(eq=False)
class TTSStartedFrame(ControlFrame):
    """The TTS started an utterance."""

    context_id: str | None = None


@dataclass(eq=False)
class TTSStoppedFrame(ControlFrame):
    """The TTS finished an utterance."""

    context_id: str | None = None
