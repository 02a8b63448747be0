"""End-of-turn detectors: at each pause, is the user done, or only thinking?

The user aggregator asks its detector once per pause (each VAD stop while a turn is open). A detector that
says "done" ends the turn as soon as the pause's words are transcribed; one that says "not done" keeps the
turn open until the user goes on, or until ``UserTurnParams.max_silence_secs`` of silence end it anyway.

Any object with this shape is a detector (a text or LLM judge, a cloud endpointing service)::

    class MyJudge:
        async def turn_is_complete(self, audio: bytes, sample_rate: int, transcript: Awaitable[str]) -> bool:
            text = await transcript    # the turn's words, once this pause's segment is transcribed
            ...

It is called at the VAD stop: ``audio`` is the end of the turn (16 kHz mono int16, at most 8 s, with 0.5 s
before it began); an audio model starts at once while the STT runs, a text judge awaits ``transcript``.
The turn cannot end before the words are in anyway, so awaiting them costs no latency. An exception counts
as "not done" (the silence limit still ends the turn).
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import Awaitable
from pathlib import Path
from typing import Protocol, runtime_checkable

from ..audio.smart_turn import SmartTurnModel

logger = logging.getLogger("voxloop.turns")


@runtime_checkable
class EndOfTurnDetector(Protocol):
    """Decides at a pause whether the user has finished their turn."""

    async def turn_is_complete(self, audio: bytes, sample_rate: int, transcript: Awaitable[str]) -> bool: ...


# Words after which nobody has finished a sentence: a pause there is a thinking pause.
_CONTINUATION_WORDS = (
    "a an the and or but so because for to of with in on at from about like if than that um uh er erm hmm "
    "my your our their his her its is are was were am be i i'm we you they"
)
_CONTINUATIONS = frozenset(_CONTINUATION_WORDS.split())


class SmartTurnDetector:
    """The Smart Turn v3 audio model (:class:`voxloop.audio.smart_turn.SmartTurnModel`), off the event loop.

    With ``use_transcript`` (the default) the words can veto a "done": a pause is never final after a word
    nobody ends a sentence on ("for", "and", "to", "the", "um", ...), or after "..." or a comma (Whisper
    writes "turn off the lights and..."). The words never turn the model's "not done" into "done":
    Whisper tiny punctuates fragments as sentences ("I'd like." for "I'd like, um, ..."; "a table for
    it." for "a table for"), so a turn the model calls unfinished waits for more speech or the silence
    limit. Known limit: flat synthetic voices fool the model both ways (espeak-ng's "What is the weather
    like in Paris today?" scores 0.08, so it waits for the limit).

    Args:
        threshold: probability at or above which the model counts the turn as complete.
        use_transcript: combine with the transcript as above (False: the model alone).
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

    async def turn_is_complete(self, audio: bytes, sample_rate: int, transcript: Awaitable[str]) -> bool:
        if sample_rate != 16000:
            raise ValueError(f"Smart Turn needs 16 kHz audio, got {sample_rate}")
        probability = await asyncio.to_thread(self.model.predict, audio)
        self.last_probability = probability
        if not self.use_transcript:
            logger.debug("Smart Turn: %.2f", probability)
            return probability >= self.threshold
        text = await transcript
        done = probability >= self.threshold and not words_go_on(text)
        logger.debug("Smart Turn: %.2f, words %r: %s", probability, text, "done" if done else "not done")
        return done


def words_go_on(text: str) -> bool:
    """Whether a transcript plainly stops mid-sentence (see :class:`SmartTurnDetector`)."""
    text = text.strip()
    words = re.findall(r"[a-z']+", text.lower())
    return not words or words[-1] in _CONTINUATIONS or text.endswith(("...", "…", ",", "-"))
