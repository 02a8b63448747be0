"""TTSService: the base of every text-to-speech service.

It takes the LLM's streamed text, cuts it into sentences while the LLM still writes, and speaks each
sentence as soon as it is complete: synthesis of the next sentence never waits for the previous one to be
played (the output transport paces playback). The first chunk of a reply ends sooner, at its first clause
boundary once it has ``first_clause_words`` words, so the first audio does not wait for the LLM to write
the whole first sentence; a chunk is then spoken like a sentence. Per response it pushes::

    TTSStartedFrame
    per sentence: AggregatedTextFrame(will_be_spoken=True)  TTSAudioRawFrame...  TTSTextFrame(sentence)
    TTSStoppedFrame  LLMFullResponseEndFrame

When the engine reports word timings, the sentence's ``TTSTextFrame`` is replaced by one
``TTSTextFrame(word, aggregated_by=WORD)`` per word, placed in the audio where the word starts (the audio
chunk is split there), each with an ``AggregatedTextProgressFrame``. A subclass implements
:meth:`TTSService.run_tts`, yielding audio (bytes, int16 mono at :attr:`TTSService.sample_rate`) and
:class:`WordTiming` marks.
"""

from __future__ import annotations

import contextlib
import itertools
import logging
import re
from collections.abc import AsyncGenerator
from dataclasses import dataclass
from typing import Any, ClassVar

from ..frames import (
    AggregatedTextFrame,
    AggregatedTextProgressFrame,
    AggregationType,
    EndFrame,
    Frame,
    InterruptionFrame,
    LLMFullResponseEndFrame,
    LLMFullResponseStartFrame,
    LLMTextFrame,
    TTSAudioRawFrame,
    TTSSpeakFrame,
    TTSStartedFrame,
    TTSStoppedFrame,
    TTSTextFrame,
    TTSUpdateSettingsFrame,
)
from ..pipeline import FrameDirection, FrameProcessor
from .text_aggregator import SentenceAggregator

logger = logging.getLogger("voxloop.tts")

_context_ids = itertools.count(1)
_TOKEN = re.compile(r"\S+")


@dataclass(frozen=True)
class WordTiming:
    """The word at characters ``[start, end)`` of the sentence starts at ``sample`` of its audio."""

    sample: int
    start: int
    end: int


TTSOutput = bytes | WordTiming


class TTSService(FrameProcessor):
    """Base text-to-speech service (queued: synthesis is slow I/O).

    Args:
        sample_rate: the rate of the audio :meth:`run_tts` yields (engines may set it later, before the
            first audio, through :attr:`sample_rate`).
        settings: initial engine settings (``voice``, ``rate``, ...), changed by ``TTSUpdateSettingsFrame``.
        aggregate_sentences: False speaks each LLM text piece as it comes (for engines that stream text).
        chunk_ms: the longest audio frame pushed (longer engine buffers are cut).
        first_clause_words: the first chunk of a reply ends at a clause boundary (``,`` ``;`` ``:``
            or a dash) once it has this many words; 0 waits for the whole first sentence.
    """

    speaks_text: ClassVar[bool] = True

    def __init__(
        self,
        *,
        sample_rate: int = 24000,
        settings: dict[str, Any] | None = None,
        aggregate_sentences: bool = True,
        chunk_ms: int = 100,
        first_clause_words: int = 3,
        name: str | None = None,
    ) -> None:
        super().__init__(name=name, queued=True)
        self.sample_rate = sample_rate
        self.settings: dict[str, Any] = dict(settings or {})
        self._aggregate = aggregate_sentences
        self._chunk_ms = chunk_ms
        self._first_clause_words = first_clause_words
        self._aggregator = SentenceAggregator(first_clause_words=first_clause_words)
        self._context_id: str | None = None  # set while a response is being spoken
        self._skip_response = False
        self._register_event_handler("on_tts_request")

    def can_generate_metrics(self) -> bool:
        return True

    async def run_tts(self, text: str) -> AsyncGenerator[TTSOutput, None]:
        """Synthesise ``text``: yield int16 mono audio at :attr:`sample_rate`, and word timings if known.

        Cancellation (an interruption) arrives as ``CancelledError`` at an ``await``: stop the engine's
        work there. Raising an exception reports an error and skips the sentence.
        """
        raise NotImplementedError
        yield b""  # pragma: no cover  (makes this an async generator for type checkers)

    async def update_settings(self, settings: dict[str, Any]) -> None:
        """Apply new settings (from ``TTSUpdateSettingsFrame``); subclasses may validate or react."""
        self.settings.update(settings)

    # -- frames -------------------------------------------------------------------------------

    async def process_frame(self, frame: Frame, direction: FrameDirection) -> None:
        if isinstance(frame, LLMTextFrame) and direction is FrameDirection.DOWNSTREAM:
            if frame.skip_tts or self._skip_response:
                await self.push_frame(frame, direction)
            elif self._aggregate:
                for sentence in self._aggregator.add(frame.text):
                    await self._speak(sentence)
            elif frame.text.strip():
                await self._speak(frame.text.strip())
        elif isinstance(frame, LLMFullResponseStartFrame):
            self._skip_response = bool(frame.skip_tts)
            await self.push_frame(frame, direction)
        elif isinstance(frame, LLMFullResponseEndFrame):
            await self._finish_response()
            self._skip_response = False
            await self.push_frame(frame, direction)
        elif isinstance(frame, TTSSpeakFrame):
            await self._speak_now(frame.text, frame.append_to_context)
        elif isinstance(frame, TTSUpdateSettingsFrame) and frame.service in (None, self):
            await self.update_settings(frame.settings)
        elif isinstance(frame, InterruptionFrame):
            self._aggregator.clear()
            self._context_id = None
            self._skip_response = False
            await self.push_frame(frame, direction)
        elif isinstance(frame, EndFrame):
            await self._finish_response()
            await self.push_frame(frame, direction)
        else:
            await self.push_frame(frame, direction)

    async def _speak_now(self, text: str, append_to_context: bool = True) -> None:
        """A ``TTSSpeakFrame``: speak it at once, sentence by sentence, in its own TTSStarted/Stopped."""
        await self._finish_response()
        aggregator = SentenceAggregator(first_clause_words=self._first_clause_words)
        sentences = aggregator.add(text)
        if (rest := aggregator.flush()) is not None:
            sentences.append(rest)
        for sentence in sentences:
            await self._speak(sentence, append_to_context)
        await self._finish_response()

    async def _finish_response(self) -> None:
        if (rest := self._aggregator.flush()) is not None:
            await self._speak(rest)
        if self._context_id is not None:
            context_id, self._context_id = self._context_id, None
            await self.push_frame(TTSStoppedFrame(context_id=context_id))

    # -- speaking a sentence ------------------------------------------------------------------

    async def _speak(self, sentence: str, append_to_context: bool = True) -> None:
        if self._context_id is None:
            self._context_id = f"{self.name}-{next(_context_ids)}"
            await self.push_frame(TTSStartedFrame(context_id=self._context_id))
        context_id = self._context_id
        await self.start_ttfb_metrics()
        await self.start_processing_metrics()
        await self.start_tts_usage_metrics(sentence)
        await self._call_event_handler("on_tts_request", sentence)
        announcement = AggregatedTextFrame(
            sentence, aggregated_by=AggregationType.SENTENCE, context_id=context_id
        )
        announcement.will_be_spoken = True
        await self.push_frame(announcement)
        speaker = _SentenceSpeaker(self, sentence, context_id, announcement.id, append_to_context)
        complete = False
        try:
            async with contextlib.aclosing(self.run_tts(sentence)) as outputs:
                async for item in outputs:
                    if isinstance(item, WordTiming):
                        await speaker.word(item)
                    elif item:
                        await speaker.audio(item)
            complete = True
        except Exception as exc:
            logger.warning("%s: synthesis failed for %r: %r", self, sentence, exc)
            await self.push_error(f"{self.name}: speech synthesis failed: {exc}", exc)
        await self.stop_ttfb_metrics()
        await self.stop_processing_metrics()
        await speaker.finish(complete)


class _SentenceSpeaker:
    """Pushes one sentence's audio, cutting it where each timed word starts."""

    def __init__(
        self, service: TTSService, sentence: str, context_id: str, segment_id: int, append_to_context: bool
    ) -> None:
        self._service = service
        self._append_to_context = append_to_context
        self._sentence = sentence
        self._context_id = context_id
        self._segment_id = segment_id
        self._tokens = [(m.start(), m.end()) for m in _TOKEN.finditer(sentence)]
        self._next_token = 0  # tokens before it have been released as words
        self._marks: list[tuple[int, int]] = []  # (sample, token index) waiting for their audio
        self._pushed = 0  # samples pushed so far
        self._first_audio = True
        self._timed = False
        self._pcm_tail = b""

    async def word(self, mark: WordTiming) -> None:
        index = self._token_at(mark.start)
        if index is None:
            return
        last = self._marks[-1][1] if self._marks else self._next_token - 1
        if index <= last:
            return  # another mark inside a word already marked ("10:30")
        self._timed = True
        self._marks.append((mark.sample, index))
        if mark.sample <= self._pushed:
            await self._release_due_words()

    async def audio(self, pcm: bytes) -> None:
        pcm = self._pcm_tail + pcm
        if len(pcm) % 2:
            pcm, self._pcm_tail = pcm[:-1], pcm[-1:]
        else:
            self._pcm_tail = b""
        while pcm:
            await self._release_due_words()
            cut = len(pcm)
            if self._marks:
                cut = min(cut, max(0, (self._marks[0][0] - self._pushed) * 2))
            cut = min(cut, self._max_chunk_bytes())
            if cut == 0:  # a mark lies exactly here: release it, then go on
                continue
            await self._push_audio(pcm[:cut])
            pcm = pcm[cut:]
        await self._release_due_words()

    async def finish(self, complete: bool) -> None:
        """After the sentence's audio: the words still held, or the whole sentence as text.

        If synthesis failed part-way (``complete`` False), only words whose audio went out were released:
        the rest was never heard, so it must not reach the context.
        """
        service = self._service
        if not complete:
            self._marks.clear()
            return
        if self._timed:
            for _sample, index in self._marks:
                await self._release_word(index)
            self._marks.clear()
            if self._next_token < len(self._tokens):
                await self._release_word(len(self._tokens) - 1)
        elif not self._first_audio:  # some audio was produced: the sentence was spoken
            frame = TTSTextFrame(
                self._sentence, aggregated_by=AggregationType.SENTENCE, context_id=self._context_id
            )
            frame.will_be_spoken = True
            frame.append_to_context = self._append_to_context
            await service.push_frame(frame)

    def _max_chunk_bytes(self) -> int:
        service = self._service
        return max(2, service.sample_rate * service._chunk_ms // 1000 * 2)

    async def _push_audio(self, pcm: bytes) -> None:
        service = self._service
        if self._first_audio:
            self._first_audio = False
            await service.stop_ttfb_metrics()
        await service.push_frame(TTSAudioRawFrame(pcm, service.sample_rate, 1, context_id=self._context_id))
        self._pushed += len(pcm) // 2

    async def _release_due_words(self) -> None:
        while self._marks and self._marks[0][0] <= self._pushed:
            _sample, index = self._marks.pop(0)
            await self._release_word(index)

    async def _release_word(self, index: int) -> None:
        """Push the word ``index`` (with any unmarked tokens before it) and the progress."""
        if index < self._next_token:
            return
        start = self._tokens[self._next_token][0]
        end = self._tokens[index][1]
        self._next_token = index + 1
        text = self._sentence[start:end]
        frame = TTSTextFrame(text, aggregated_by=AggregationType.WORD, context_id=self._context_id)
        frame.will_be_spoken = True
        frame.append_to_context = self._append_to_context
        await self._service.push_frame(frame)
        await self._service.push_frame(
            AggregatedTextProgressFrame(
                segment_id=self._segment_id,
                text=text,
                accumulated_text=self._sentence[:end],
                remaining_text=self._sentence[end:].strip(),
                aggregated_by=AggregationType.SENTENCE,
                context_id=self._context_id,
            )
        )

    def _token_at(self, position: int) -> int | None:
        for i, (_start, end) in enumerate(self._tokens):
            if position < end:
                return i
        return None
