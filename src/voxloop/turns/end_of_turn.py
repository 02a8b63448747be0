"""End-of-turn detectors: at each pause, is the user done, only thinking, or maybe either?

The user aggregator asks its detector once per pause (each VAD stop while a turn is open). The verdict
(:class:`TurnVerdict`) sets how much silence ends the turn, counted from the end of speech: "done" ends it
as soon as the pause's words are transcribed (and ``UserTurnParams.min_silence_secs`` have passed),
"likely" after ``likely_silence_secs``, "maybe" after ``maybe_silence_secs``, "not done" after
``max_silence_secs``; speech again first keeps the turn open.

Any object with this shape is a detector (a text or LLM judge, a cloud endpointing service)::

    class MyJudge:
        async def turn_is_complete(
            self, audio: bytes, sample_rate: int, transcript: Awaitable[str]
        ) -> bool | TurnVerdict:
            text = await transcript    # the turn's words, once this pause's segment is transcribed
            ...

It is called at the VAD stop: ``audio`` is the end of the turn (16 kHz mono int16, at most 8 s, with 0.5 s
before it began); an audio model starts at once while the STT runs, a text judge awaits ``transcript``.
The turn cannot end before the words are in anyway, so awaiting them costs no latency. ``True`` means
"done", ``False`` "not done". An exception counts as "not done" (the silence limit still ends the turn).
The transcript is a :class:`TurnTranscript` (a ``str``) whose ``words`` hold the last segment's words with
the STT's confidence in each, when the STT gives them (``TranscriptionFrame.result.words``: the local
Whisper's ``WhisperResult`` does).
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import Awaitable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol, runtime_checkable

from ..audio.smart_turn import SmartTurnModel
from ._controller import TurnVerdict

logger = logging.getLogger("voxloop.turns")


@dataclass(frozen=True)
class SpokenWord:
    """One transcribed word (with its punctuation) and what the STT thought of it.

    - ``probability``: its confidence in the word (0..1).
    - ``stop_probability``: how likely it found it, at this word, that the speech had ended instead (0..1).
    """

    text: str
    probability: float
    stop_probability: float = 0.0


class TurnTranscript(str):
    """The turn's words so far (a plain ``str``), with the last segment's :class:`SpokenWord` s if known."""

    words: tuple[SpokenWord, ...]

    def __new__(cls, text: str, words: Iterable[SpokenWord] = ()) -> TurnTranscript:
        self = super().__new__(cls, text)
        self.words = tuple(words)
        return self


@runtime_checkable
class EndOfTurnDetector(Protocol):
    """Decides at a pause whether the user has finished their turn."""

    async def turn_is_complete(
        self, audio: bytes, sample_rate: int, transcript: Awaitable[str]
    ) -> bool | TurnVerdict: ...


# Words after which nobody has finished a sentence: a pause there is a thinking pause.
_CONTINUATION_WORDS = (
    "a an the and or but so because for to of with in on at from about like if than that um uh er erm hmm "
    "my your our their his her its is are was were am be i i'm we they"
)
_CONTINUATIONS = frozenset(_CONTINUATION_WORDS.split())
# A word at the very end is Whisper's guess, not speech, when it was unsure of it (under GUESSED_BELOW) or
# when it nearly ended the text before it (STOPPED_ABOVE): small Whisper models finish a cut-off sentence
# with a made-up word ("a table for it.", "set a timer for the pump."); see the tests for the measurements.
GUESSED_BELOW = 0.5
STOPPED_ABOVE = 0.05
# A finished sentence whose last word Whisper was sure of (SURE_ABOVE or more, ending before it at most
# SURE_STOP_BELOW) is "likely" done even when Smart Turn hears it as unfinished: the last words of the
# finished questions it scored low were at 0.89-1.0 and 0-0.01; guesses at a cut at 0.09-0.47 or 0.03-0.33.
SURE_ABOVE = 0.8
SURE_STOP_BELOW = 0.02
# Smart Turn's score can swing on 50 ms more or less of trailing silence (0.05-0.92 on one espeak-ng
# fragment, "Could you play some music..."): a pause counts as done only if the clip, and the clip 50 and
# 100 ms shorter, all score done. The later ones run only while the score stays at or above the threshold.
# (Each run is about 95 ms here; without the 50 ms one that fragment is "done":
# test_a_finished_sentence_that_goes_on_after_a_pause_is_likely_not_done.)
WINDOW_TRIMS_SECS = (0.0, 0.05, 0.1)
_SENTENCE_END = (".", "?", "!")


class SmartTurnDetector:
    """The end-of-turn judge: the Smart Turn v3 audio model combined with what Whisper heard.

    The model (:class:`voxloop.audio.smart_turn.SmartTurnModel`, run off the event loop on the clip and
    on the clip 50 and 100 ms shorter, :data:`WINDOW_TRIMS_SECS`; the lowest score counts) hears the
    intonation; the words (with ``use_transcript``, the default) decide what it cannot:

    1. Trailing words Whisper was unsure of (confidence under :data:`GUESSED_BELOW`), or before which it
       nearly ended the text (:data:`STOPPED_ABOVE`), are set aside as guesses (:func:`heard_words`):
       Whisper tiny completes a fragment with a likely word.
    2. What is left plainly goes on ("for", "and", "to", "the", "um", "...", a comma; :func:`words_go_on`):
       **not done**, whatever the model says.
    3. It does not end a sentence (no ".", "?" or "!": Whisper leaves a sentence open when the words
       stopped mid-way, "Please remind me" for "Please remind me to ..."): at most **maybe**.
    4. Otherwise the model decides: **done** at ``threshold`` or above. Below it (a finished sentence the
       model hears as unfinished: flat synthetic voices score 0.01-0.42 on finished questions), **likely**
       when Whisper heard every word and was sure of the last one (:func:`sure_of_the_end`), else
       **maybe**. "Likely" waits a shorter silence than "maybe": a finished sentence may still go on
       after a pause ("Could you play some music? ... by the Beatles").

    Args:
        threshold: probability at or above which the model counts the turn as complete.
        use_transcript: combine with the transcript as above (False: the model alone, done or not done).
        model_path: the ONNX file (default: the one installed with the ``pipecat-ai`` model carrier).
    """

    def __init__(
        self,
        *,
        threshold: float = 0.5,
        use_transcript: bool = True,
        model_path: str | Path | None = None,
    ) -> None:
        if not 0.0 < threshold < 1.0:
            raise ValueError("threshold must be within (0, 1)")
        self.threshold = threshold
        self.use_transcript = use_transcript
        self.model = SmartTurnModel(model_path)
        self.last_probability: float | None = None

    async def turn_is_complete(
        self, audio: bytes, sample_rate: int, transcript: Awaitable[str]
    ) -> TurnVerdict:
        if sample_rate != 16000:
            raise ValueError(f"Smart Turn needs 16 kHz audio, got {sample_rate}")
        probability = await asyncio.to_thread(self._lowest_probability, audio)
        self.last_probability = probability
        if not self.use_transcript:
            logger.debug("Smart Turn: %.2f", probability)
            return TurnVerdict.of(probability >= self.threshold)
        text = await transcript
        verdict = judge(probability >= self.threshold, text, getattr(text, "words", ()))
        logger.debug("Smart Turn: %.2f, words %r: %s", probability, text, verdict.value)
        return verdict

    def _lowest_probability(self, audio: bytes) -> float:
        """The model's lowest score over the clip and its trimmed copies (:data:`WINDOW_TRIMS_SECS`)."""
        lowest = 1.0
        for trim in WINDOW_TRIMS_SECS:
            cut = 2 * round(trim * 16000)
            lowest = min(lowest, self.model.predict(audio[: len(audio) - cut] if cut else audio))
            if lowest < self.threshold:
                break
        return lowest


def judge(model_says_done: bool, text: str, words: Iterable[SpokenWord] = ()) -> TurnVerdict:
    """The verdict from the audio model's answer and the words (rules 1-4 of :class:`SmartTurnDetector`)."""
    if words_go_on(text):
        return TurnVerdict.NOT_DONE
    words = tuple(words)
    heard = heard_words(text, words)
    if not heard.strip():
        return TurnVerdict.MAYBE  # every word was a guess
    if words_go_on(heard):
        return TurnVerdict.NOT_DONE
    if not heard.rstrip().endswith(_SENTENCE_END):
        return TurnVerdict.MAYBE
    if model_says_done:
        return TurnVerdict.DONE
    return TurnVerdict.LIKELY if heard == text and sure_of_the_end(text, words) else TurnVerdict.MAYBE


def heard_words(text: str, words: tuple[SpokenWord, ...]) -> str:
    """``text`` without the trailing words Whisper guessed (``words``: the last segment's, in order).

    The words are matched against the end of the text; if they do not match (another STT, edited text),
    the text is kept whole.
    """
    tokens = text.split()
    if not _words_match(tokens, words):
        return text
    guessed = 0
    while guessed < len(words) and is_a_guess(words[len(words) - 1 - guessed]):
        guessed += 1
    if not guessed:
        return text
    kept = tokens[: len(tokens) - guessed]
    return " ".join(kept)


def is_a_guess(word: SpokenWord) -> bool:
    """Whether Whisper made ``word`` up rather than heard it (when it is at the end of the words)."""
    return word.probability < GUESSED_BELOW or word.stop_probability > STOPPED_ABOVE


def sure_of_the_end(text: str, words: tuple[SpokenWord, ...]) -> bool:
    """Whether Whisper was sure of the last word of ``text`` and of not stopping before it.

    False without ``words`` or when they do not match the end of the text (as in :func:`heard_words`).
    """
    if not _words_match(text.split(), words):
        return False
    last = words[-1]
    return last.probability >= SURE_ABOVE and last.stop_probability <= SURE_STOP_BELOW


def _words_match(tokens: list[str], words: tuple[SpokenWord, ...]) -> bool:
    return bool(words) and [w.text for w in words] == tokens[len(tokens) - len(words) :]


def words_go_on(text: str) -> bool:
    """Whether a transcript plainly stops mid-sentence (see :class:`SmartTurnDetector`)."""
    text = text.strip()
    words = re.findall(r"[a-z']+", text.lower())
    return not words or words[-1] in _CONTINUATIONS or text.endswith(("...", "…", ",", "-"))
