"""The user turn state machine, without I/O: events in, actions out.

The user aggregator feeds it VAD, transcription and bot-state events with the pipeline clock's time,
executes the actions it returns (start a turn and interrupt the bot, end a turn with its text, drop a
noise), and sleeps until :meth:`TurnController.next_deadline`, then calls :meth:`on_timer`.

Speech is tracked as *segments* (VAD start to VAD stop). A segmented STT delivers one transcription
(maybe empty) plus a ``TranscriptionFinishedFrame`` per segment, in order, so each transcription belongs
to the oldest segment not finished yet. A segment is either part of the turn (accepted), noise
(rejected: its words are dropped whenever they arrive), or undecided: speech that began while the bot
was busy and has not yet met the barge-in thresholds.

With an end-of-turn detector (``uses_detector``), the aggregator reports its verdict on each pause
(:meth:`TurnController.on_turn_verdict`): "done" ends the turn once the words are in, "likely" and
"maybe" wait for more speech or ``likely_silence_secs`` / ``maybe_silence_secs``, "not done" for more
speech or ``max_silence_secs``; without one, ``stop_secs`` of silence ends it.

Speech that starts while the bot speaks and is undecided pauses the bot (:class:`PauseBot`), so the bot
falls silent at the speech onset rather than when the barge-in is confirmed: a confirmed barge-in then
interrupts (which clears the pause), and a rejected one resumes it (:class:`ResumeBot`), as does any
change that makes the pause moot (the bot stopped speaking, the turn opened without an interruption).
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from enum import Enum, StrEnum

from .params import UserTurnParams

_NS = 1_000_000_000


class BotState(StrEnum):
    """What the bot is doing, as the user aggregator sees it."""

    LISTENING = "listening"
    THINKING = "thinking"
    SPEAKING = "speaking"


@dataclass
class TurnStarted:
    """Open the user turn; ``interrupt``: broadcast an interruption (barge-in)."""

    interrupt: bool
    bot_state: BotState


@dataclass
class TurnEnded:
    """Close the user turn with its text ("" when nothing was recognised).

    ``interrupted_thinking``: the turn cut off a reply before anything was heard.
    """

    text: str
    interrupted_thinking: bool = False
    forced: bool = False


@dataclass
class SpeechRejected:
    """Speech that did not make a turn (noise while the bot was busy); its words are dropped."""

    text: str


@dataclass
class UserIdle:
    """The bot finished and the user said nothing for ``user_idle_timeout_secs``."""


@dataclass
class PauseBot:
    """Hold the bot's audio: the user may be barging in (``UserTurnParams.pause_on_speech``)."""


@dataclass
class ResumeBot:
    """Continue the held audio: the speech was noise, or the pause no longer matters."""


Action = TurnStarted | TurnEnded | SpeechRejected | UserIdle | PauseBot | ResumeBot


@dataclass
class _Segment:
    onset_ns: int
    end_ns: int | None = None  # where the speech ended (None while speaking)
    heard_until_ns: int = 0  # speech was certainly still going on at this time (UserSpeakingFrame)
    closed_ns: int | None = None  # when the VAD said so
    accepted: bool | None = None  # None: undecided
    holds_bot: bool = False  # began while the bot spoke: the bot is paused until it is decided
    texts: list[str] = field(default_factory=list)
    interim_words: int = 0

    def words(self) -> int:
        return max(self.interim_words, sum(len(t.split()) for t in self.texts))


class TurnVerdict(Enum):
    """A detector's answer at a pause."""

    DONE = "done"
    LIKELY = "likely"  # probably done (the words finished, the sound unsure): a short wait
    MAYBE = "maybe"  # unsure: give the user a little longer before taking the turn
    NOT_DONE = "not done"

    def __bool__(self) -> bool:
        return self is TurnVerdict.DONE  # as ``turn_is_complete`` reads: is the turn complete?

    @classmethod
    def of(cls, answer: bool | TurnVerdict) -> TurnVerdict:
        """A verdict from what a detector returned (``True``: done, ``False``: not done)."""
        if isinstance(answer, TurnVerdict):
            return answer
        return cls.DONE if answer else cls.NOT_DONE


class TurnController:
    """Decides user turns. Every method takes ``now_ns`` (pipeline clock) and returns actions."""

    def __init__(self, params: UserTurnParams | None = None, *, uses_detector: bool = False) -> None:
        self.params = params or UserTurnParams()
        self.uses_detector = uses_detector
        self.verdict: TurnVerdict | None = None  # the detector's word on the current pause (None: not given)
        self.bot_speaking = False
        self.response_open = False
        self.turn_open = False
        self.vad_speaking = False
        self._parts: list[str] = []
        self._segments: deque[_Segment] = deque()  # not finished yet, oldest first
        self._current: _Segment | None = None
        self._last_speech_end_ns = 0
        self._last_activity_ns = 0
        self._turn_interrupted_thinking = False
        self._idle_since_ns: int | None = None
        self.bot_paused = False  # a PauseBot was sent and not yet undone (by ResumeBot or an interruption)
        # How long the VAD takes to say "stopped" after speech ends (learnt from its stop frames). While
        # it says "speaking", speech is only known to have lasted until now minus this.
        self._vad_stop_ns = int(0.3 * _NS)
        self._hold_until_ns = 0  # a sound that may be speech again: no turn end before this

    # -- state ------------------------------------------------------------------------------------

    @property
    def bot_state(self) -> BotState:
        if self.bot_speaking:
            return BotState.SPEAKING
        return BotState.THINKING if self.response_open else BotState.LISTENING

    @property
    def text(self) -> str:
        """The text of the open turn so far."""
        return " ".join(self._parts)

    @property
    def has_undecided_speech(self) -> bool:
        return any(s.accepted is None for s in self._segments)

    def _thresholds(self) -> tuple[float, int]:
        p, state = self.params, self.bot_state
        if state is BotState.SPEAKING:
            return p.interruption_min_speech_secs, p.interruption_min_words
        if state is BotState.THINKING:
            return p.thinking_min_speech_secs, p.thinking_min_words
        return 0.0, 0

    def _ignores_user(self) -> bool:
        return not self.params.allow_interruptions and self.bot_state is not BotState.LISTENING

    # -- bot side ---------------------------------------------------------------------------------

    def on_bot_started(self, now_ns: int) -> list[Action]:
        self.bot_speaking = True
        self.response_open = True
        self._idle_since_ns = None
        return self._evaluate(now_ns)

    def on_bot_stopped(self, now_ns: int) -> list[Action]:
        self.bot_speaking = False
        self._became_maybe_idle(now_ns)
        return self._evaluate(now_ns)

    def on_response_started(self, now_ns: int) -> list[Action]:
        """The LLM was asked to run."""
        self.response_open = True
        self._idle_since_ns = None
        return self._evaluate(now_ns)

    def on_response_done(self, now_ns: int) -> list[Action]:
        """The reply is over (assistant turn stopped, or an interruption / error ended it)."""
        self.response_open = False
        self._became_maybe_idle(now_ns)
        return self._evaluate(now_ns)

    def _became_maybe_idle(self, now_ns: int) -> None:
        if self.bot_state is BotState.LISTENING and self._idle_since_ns is None:
            self._idle_since_ns = now_ns

    # -- user side --------------------------------------------------------------------------------

    def on_vad_started(self, now_ns: int, start_secs: float) -> list[Action]:
        self.vad_speaking = True
        self.verdict = None  # the user went on: the last pause's verdict no longer applies
        self._last_activity_ns = now_ns
        self._idle_since_ns = None
        segment = _Segment(onset_ns=now_ns - int(start_secs * _NS))
        if self.turn_open:
            segment.accepted = True
        elif self._ignores_user():
            segment.accepted = False
        self._current = segment
        self._segments.append(segment)
        actions = self._evaluate(now_ns)
        if segment.accepted is None and self.params.pause_on_speech and self.bot_state is BotState.SPEAKING:
            segment.holds_bot = True
            if not self.bot_paused:
                self.bot_paused = True
                actions.append(PauseBot())
        return actions

    def on_vad_stopped(self, now_ns: int, stop_secs: float) -> list[Action]:
        self.vad_speaking = False
        self._last_activity_ns = now_ns
        segment, self._current = self._current, None
        self._vad_stop_ns = int(stop_secs * _NS)
        end_ns = now_ns - self._vad_stop_ns
        self._last_speech_end_ns = max(self._last_speech_end_ns, end_ns)
        actions: list[Action] = []
        if segment is not None:
            segment.end_ns = max(segment.onset_ns, end_ns)
            segment.closed_ns = now_ns
            if segment.accepted is None:
                min_secs, _ = self._thresholds()
                if (segment.end_ns - segment.onset_ns) < min_secs * _NS:
                    actions.append(self._reject(segment))
        return actions + self._evaluate(now_ns)

    def on_speech_resumed(self, now_ns: int) -> list[Action]:
        """A frame of speech while the VAD is quiet: the user may be going on (the VAD's start is
        ``start_secs`` away). The turn does not end for ``resume_hold_secs``, so a short pause (a comma
        before "um") is not taken for the end while the VAD makes up its mind."""
        if self.turn_open and not self.vad_speaking:
            self._hold_until_ns = now_ns + int(self.params.resume_hold_secs * _NS)
        return self._evaluate(now_ns)

    def on_user_speaking(self, now_ns: int) -> list[Action]:
        self._last_activity_ns = now_ns
        if self._current is None:
            return []
        self._current.heard_until_ns = now_ns
        return self._evaluate(now_ns)

    def on_interim(self, now_ns: int, text: str) -> list[Action]:
        self._last_activity_ns = now_ns
        segment = self._current or self._head()
        if segment is not None and segment.accepted is None:
            segment.interim_words = len(text.split())
            return self._evaluate(now_ns)
        return []

    def on_transcription(self, now_ns: int, text: str) -> list[Action]:
        self._last_activity_ns = now_ns
        text = text.strip()
        if not text:
            return []
        segment = self._head()
        if segment is not None and not (segment.accepted is True and not self.turn_open):
            if segment.accepted is True:
                self._parts.append(text)
            elif segment.accepted is None:
                segment.texts.append(text)
            return self._evaluate(now_ns)
        # No segment to attach to (no VAD, or the turn it belonged to was forced to end).
        if self.turn_open:
            self._parts.append(text)
            self._last_speech_end_ns = max(self._last_speech_end_ns, now_ns)
            return self._evaluate(now_ns)
        if not self.params.start_on_transcription or self._ignores_user():
            return [SpeechRejected(text)]
        _, min_words = self._thresholds()
        if len(text.split()) < min_words:
            return [SpeechRejected(text)]
        self._last_speech_end_ns = max(self._last_speech_end_ns, now_ns)
        started = self._open_turn()
        self._parts.append(text)
        return [started, *self._evaluate(now_ns)]

    def on_transcription_finished(self, now_ns: int) -> list[Action]:
        self._last_activity_ns = now_ns
        for segment in self._segments:
            if segment.closed_ns is not None:
                return self._finish(segment, now_ns)
        return []

    def on_turn_verdict(self, now_ns: int, verdict: TurnVerdict | bool) -> list[Action]:
        """The end-of-turn detector's answer for the current pause (ignored if the user spoke again)."""
        if self.vad_speaking:
            return []
        self.verdict = TurnVerdict.of(verdict)
        return self._evaluate(now_ns)

    def _silence_needed_ns(self) -> int:
        """Silence after the end of speech that ends the turn (short once the detector said "done")."""
        p = self.params
        if not self.uses_detector:
            return int(p.stop_secs * _NS)
        if self.verdict is TurnVerdict.DONE:
            return int(p.min_silence_secs * _NS)
        if self.verdict is TurnVerdict.LIKELY:
            return int(max(p.min_silence_secs, min(p.likely_silence_secs, p.max_silence_secs)) * _NS)
        if self.verdict is TurnVerdict.MAYBE:
            return int(max(p.min_silence_secs, min(p.maybe_silence_secs, p.max_silence_secs)) * _NS)
        return int(p.max_silence_secs * _NS)

    def on_timer(self, now_ns: int) -> list[Action]:
        return self._evaluate(now_ns)

    def on_end(self) -> TurnEnded | None:
        """The pipeline ends: close an open turn (undecided speech is dropped)."""
        ended = self._close_turn(forced=True) if self.turn_open else None
        self._segments.clear()
        self._current = None
        self.bot_paused = False  # the output plays out what it holds at the End
        return ended

    # -- internals ---------------------------------------------------------------------------------

    def _head(self) -> _Segment | None:
        return self._segments[0] if self._segments else None

    def _finish(self, segment: _Segment, now_ns: int) -> list[Action]:
        """The segment's words are all in (or will never come): decide it if still undecided."""
        if segment in self._segments:
            self._segments.remove(segment)
        actions: list[Action] = []
        if segment.accepted is None:
            actions += self._try_confirm(now_ns, [segment])
            if segment.accepted is None:
                actions.append(self._reject(segment))
        return actions + self._evaluate(now_ns)

    def _reject(self, segment: _Segment) -> SpeechRejected:
        segment.accepted = False
        text = " ".join(segment.texts)
        segment.texts.clear()
        return SpeechRejected(text)

    def _open_turn(self) -> TurnStarted:
        state = self.bot_state
        self.turn_open = True
        self._turn_interrupted_thinking = state is BotState.THINKING and self.params.allow_interruptions
        self._idle_since_ns = None
        interrupt = self.params.allow_interruptions
        if interrupt:
            self.response_open = False
            self.bot_paused = False  # the interruption clears the pause along with the bot's output
        return TurnStarted(interrupt=interrupt, bot_state=state)

    def _close_turn(self, *, forced: bool = False) -> TurnEnded:
        ended = TurnEnded(self.text, self._turn_interrupted_thinking, forced)
        self.turn_open = False
        self.verdict = None
        self._parts = []
        self._turn_interrupted_thinking = False
        # Words of accepted segments still on their way start a new turn when they arrive.
        return ended

    def _speech_qualifies(self, segment: _Segment, now_ns: int, min_secs: float) -> bool:
        if min_secs <= 0:
            return True
        if segment.end_ns is not None:
            end = segment.end_ns
        else:  # still speaking: certainly until the VAD's stop delay ago, or the last speech tick
            end = max(now_ns - self._vad_stop_ns, segment.heard_until_ns)
        return end - segment.onset_ns >= min_secs * _NS

    def _try_confirm(self, now_ns: int, extra: list[_Segment] | None = None) -> list[Action]:
        """Confirm undecided speech as a turn (a barge-in) once it meets the thresholds."""
        undecided = [s for s in (*(extra or ()), *self._segments) if s.accepted is None]
        if not undecided or self.turn_open:
            return []
        if self._ignores_user():
            for segment in undecided:
                self._reject(segment)
            return []
        min_secs, min_words = self._thresholds()
        words = sum(s.words() for s in undecided)
        if words < min_words or not any(self._speech_qualifies(s, now_ns, min_secs) for s in undecided):
            return []
        started = self._open_turn()
        for segment in undecided:
            segment.accepted = True
            self._parts.extend(segment.texts)
            segment.texts.clear()
        return [started]

    def _evaluate(self, now_ns: int) -> list[Action]:
        actions: list[Action] = []
        # Segments whose STT result never came: give up on them after the fallback timeout.
        timeout_ns = int(self.params.transcription_timeout_secs * _NS)
        for segment in list(self._segments):
            if segment.closed_ns is not None and now_ns - segment.closed_ns >= timeout_ns:
                self._segments.remove(segment)
                if segment.accepted is None:
                    actions += self._try_confirm(now_ns, [segment])
                    if segment.accepted is None:
                        actions.append(self._reject(segment))
        actions += self._try_confirm(now_ns)
        # Turn end: enough silence, and the words of every segment are in.
        if self.turn_open:
            quiet_for = now_ns - self._last_activity_ns
            needed = self._silence_needed_ns()
            silence_ok = (
                not self.vad_speaking
                and now_ns - self._last_speech_end_ns >= needed
                and now_ns >= self._hold_until_ns
            )
            waiting = any(s.accepted is not False and s.closed_ns is not None for s in self._segments)
            if silence_ok and not waiting:
                actions.append(self._close_turn())
            elif quiet_for >= self.params.turn_timeout_secs * _NS:
                self.vad_speaking = False
                self._current = None
                for segment in self._segments:
                    if segment.closed_ns is None:  # the VAD never said stop: close it here
                        segment.end_ns = segment.closed_ns = now_ns
                actions.append(self._close_turn(forced=True))
        # Idle user.
        idle = self.params.user_idle_timeout_secs
        if (
            idle is not None
            and self._idle_since_ns is not None
            and not self.turn_open
            and not self.vad_speaking
            and self.bot_state is BotState.LISTENING
            and now_ns - self._idle_since_ns >= idle * _NS
        ):
            self._idle_since_ns = None
            actions.append(UserIdle())
        if self.bot_paused and not self._holds_bot():
            self.bot_paused = False
            actions.append(ResumeBot())
        return actions

    def _holds_bot(self) -> bool:
        """The pause still matters: the bot speaks and speech that began over it is undecided."""
        return (
            self.params.pause_on_speech
            and self.bot_state is BotState.SPEAKING
            and any(s.holds_bot and s.accepted is None for s in self._segments)
        )

    def next_deadline(self, now_ns: int) -> int | None:
        """When :meth:`on_timer` should be called next (pipeline clock ns, after ``now_ns``), or None."""
        p = self.params
        deadlines: list[int] = []
        for segment in self._segments:
            if segment.closed_ns is not None:
                deadlines.append(segment.closed_ns + int(p.transcription_timeout_secs * _NS))
        if not self.turn_open:
            min_secs, _ = self._thresholds()
            for segment in self._segments:
                if segment.accepted is None and segment.end_ns is None:
                    deadlines.append(segment.onset_ns + int(min_secs * _NS) + self._vad_stop_ns)
        else:
            needed = self._silence_needed_ns()
            if not self.vad_speaking:
                deadlines.append(max(self._last_speech_end_ns + needed, self._hold_until_ns))
            deadlines.append(self._last_activity_ns + int(p.turn_timeout_secs * _NS))
        if p.user_idle_timeout_secs is not None and self._idle_since_ns is not None:
            deadlines.append(self._idle_since_ns + int(p.user_idle_timeout_secs * _NS))
        future = [d for d in deadlines if d > now_ns]
        return min(future) if future else None
