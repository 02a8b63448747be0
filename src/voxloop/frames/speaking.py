"""Who is speaking, voice activity, muting and interruptions."""

from __future__ import annotations

from dataclasses import dataclass

from ._base import SystemFrame


@dataclass(eq=False)
class InterruptionFrame(SystemFrame):
    """The bot is interrupted: drop queued bot output and cancel in-flight work."""


@dataclass(eq=False)
class UserStartedSpeakingFrame(SystemFrame):
    """The user's turn started (decided by turn-taking, not raw VAD)."""


@dataclass(eq=False)
class UserStoppedSpeakingFrame(SystemFrame):
    """The user's turn ended."""


@dataclass(eq=False)
class UserSpeakingFrame(SystemFrame):
    """The user is speaking right now (a periodic tick while voice is detected)."""


@dataclass(eq=False)
class VADUserStartedSpeakingFrame(SystemFrame):
    """Raw VAD: voice started. ``start_secs`` is the VAD's onset delay, ``timestamp`` wall time."""

    start_secs: float = 0.0
    timestamp: float = 0.0


@dataclass(eq=False)
class VADUserStoppedSpeakingFrame(SystemFrame):
    """Raw VAD: voice stopped. ``stop_secs`` is the VAD's silence delay, ``timestamp`` wall time."""

    stop_secs: float = 0.0
    timestamp: float = 0.0


@dataclass(eq=False)
class VADSpeechEndingFrame(SystemFrame):
    """Raw VAD, before its stop: inside a segment, ``quiet_secs`` of silence so far.

    The stop follows ``until_stop_secs`` later unless speech comes back first
    (:class:`VADSpeechResumedFrame`): work that needs the segment's end (transcription, an end-of-turn
    judgement) may start on what was said so far, and is dropped if the speech resumes.
    """

    quiet_secs: float = 0.0
    until_stop_secs: float = 0.0


@dataclass(eq=False)
class VADSpeechResumedFrame(SystemFrame):
    """Raw VAD, before its decision: a frame of speech after a :class:`VADSpeechEndingFrame` (the segment
    goes on), or while quiet (the start of what may become a new segment, or noise)."""


@dataclass(eq=False)
class ProposedUserStartedSpeakingFrame(SystemFrame):
    """A service with its own VAD (e.g. a speech-to-speech model) proposes that the user started."""


@dataclass(eq=False)
class ProposedUserStoppedSpeakingFrame(SystemFrame):
    """A service with its own VAD proposes that the user's turn ended."""


@dataclass(eq=False)
class BotStartedSpeakingFrame(SystemFrame):
    """The output transport started playing bot audio."""


@dataclass(eq=False)
class BotStoppedSpeakingFrame(SystemFrame):
    """The output transport finished (or dropped) the bot's audio."""


@dataclass(eq=False)
class BotOutputPauseFrame(SystemFrame):
    """Hold the bot's audio at the output: the user may be barging in (not decided yet).

    The output transport stops writing audio at once but drops nothing, and the bot does not count as
    stopped speaking while paused. Cleared by :class:`BotOutputResumeFrame` (a false alarm: playback
    continues where it stopped), by an interruption (the barge-in was confirmed) or by an End (what is
    left plays out).
    """


@dataclass(eq=False)
class BotOutputResumeFrame(SystemFrame):
    """Continue the bot's audio held by :class:`BotOutputPauseFrame`, exactly where it stopped."""


@dataclass(eq=False)
class BotSpeakingFrame(SystemFrame):
    """The bot is speaking right now (a periodic tick while audio plays)."""


@dataclass(eq=False)
class UserMuteStartedFrame(SystemFrame):
    """The user's input is muted (their audio and words are ignored)."""


@dataclass(eq=False)
class UserMuteStoppedFrame(SystemFrame):
    """The user's input is no longer muted."""


@dataclass(eq=False)
class STTMuteFrame(SystemFrame):
    """Mute or unmute speech-to-text."""

    mute: bool


@dataclass(eq=False)
class VADParamsUpdateFrame(SystemFrame):
    """Change the VAD's settings at run time; a field left at None keeps its current value."""

    confidence: float | None = None
    start_secs: float | None = None
    stop_secs: float | None = None
    min_volume: float | None = None


@dataclass(eq=False)
class AssistantTurnStoppedFrame(SystemFrame):
    """Pushed upstream by the assistant aggregator when the bot's reply is over.

    "Over" means nothing more will come from the LLM for it: the response ended with no function
    call left pending and no new LLM run requested, or it was interrupted. The user aggregator uses
    it to tell "thinking" from "listening". ``text`` is what was stored (what was played).
    """

    text: str = ""
    interrupted: bool = False
