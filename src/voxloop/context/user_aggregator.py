"""The user aggregator: decides user turns and writes what the user said into the context.

It sits after the STT. Turn-taking lives in :class:`voxloop.turns._controller.TurnController` (a pure
state machine); this processor feeds it frames and the pipeline clock, carries out what it decides, and
keeps one owned timer task for its deadlines. It also applies context edits that come from upstream
(RTVI: ``send-text``, tools) and runs the LLM by pushing ``LLMContextFrame`` downstream.

Bot state comes from ``BotStarted/StoppedSpeakingFrame`` (travelling upstream from the output
transport), from the ``LLMContextFrame`` pushed here ("thinking"), and from the assistant aggregator's
upstream ``AssistantTurnStoppedFrame`` (the reply is over).

With a ``turn_detector`` (:mod:`voxloop.turns.end_of_turn`), the aggregator keeps the last 8 s of the
user's audio and, at each pause, asks the detector off the event loop whether the turn is over; the
answer goes to the controller (an answer that comes after the user spoke again is dropped). With a VAD
that says when a pause begins (``VADSpeechEndingFrame``), it asks then, on the audio so far lengthened
with the quiet just heard to what the VAD's stop would give, and hands the answer over at the stop; speech
again first (``VADSpeechResumedFrame``) drops it.

Speculation (with a detector): once a pause's words are in and the turn is still open (the detector has
not said "done" yet, or said "not done"), the LLM is started on a copy of the context holding those words
(``LLMSpeculationFrame("start")``). The LLM holds everything it produces. If the user goes on, it is
dropped and nothing of it is seen or heard, nor stored; if the turn ends with the same words, the user
message goes into the context and the held reply is released ("confirm") instead of a new LLM run.

While the bot speaks, speech that may be a barge-in pauses the bot at once: the controller's ``PauseBot``
and ``ResumeBot`` become ``BotOutputPauseFrame`` / ``BotOutputResumeFrame`` pushed downstream (system
frames: they overtake the LLM's and the TTS's queues and reach the output transport inline).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

from ..audio import PCMConverter, PreRoll
from ..frames import (
    AssistantTurnStoppedFrame,
    BotOutputPauseFrame,
    BotOutputResumeFrame,
    BotStartedSpeakingFrame,
    BotStoppedSpeakingFrame,
    CancelFrame,
    EndFrame,
    Frame,
    InputAudioRawFrame,
    InputTextRawFrame,
    InterimTranscriptionFrame,
    InterruptionFrame,
    LLMContextFrame,
    LLMMessagesAppendFrame,
    LLMMessagesUpdateFrame,
    LLMRunFrame,
    LLMSetToolChoiceFrame,
    LLMSetToolsFrame,
    LLMSpeculationFrame,
    TranscriptionFinishedFrame,
    TranscriptionFrame,
    TranslationFrame,
    UserSpeakingFrame,
    UserStartedSpeakingFrame,
    UserStoppedSpeakingFrame,
    VADSpeechEndingFrame,
    VADSpeechResumedFrame,
    VADUserStartedSpeakingFrame,
    VADUserStoppedSpeakingFrame,
)
from ..pipeline import DOWNSTREAM, FrameDirection, FrameProcessor, TaskSet
from ..turns import (
    Action,
    BotState,
    PauseBot,
    ResumeBot,
    SpeechRejected,
    TurnController,
    TurnEnded,
    TurnStarted,
    TurnVerdict,
    UserIdle,
)
from ..turns.end_of_turn import EndOfTurnDetector, SpokenWord, TurnTranscript
from ..turns.params import UserTurnParams
from .context import LLMContext

logger = logging.getLogger("voxloop.context")

_DETECTOR_RATE = 16000
_DETECTOR_WINDOW_SECS = 8.0
_DETECTOR_PRE_SPEECH_SECS = 0.5

ContextSummarizer = Callable[[LLMContext], Awaitable[None]]


class LLMUserAggregator(FrameProcessor):
    """Turns the user's speech (and typed text, and RTVI context edits) into LLM runs.

    Args:
        context: the shared conversation.
        params: turn-taking settings (read live: changing a field takes effect on the next event).
        context_summarizer: optional ``async f(context)`` that shortens a long conversation in place
            (e.g. with ``context.transform_messages``); awaited on a task of its own before an LLM run
            once the context holds more than ``summarize_after_messages`` messages.
        summarize_after_messages: the threshold for the summarizer.
        max_typed_text_chars: typed text (``InputTextRawFrame``, e.g. a wire's text frame) longer than
            this is not given to the LLM but reported as an error; None: no limit. RTVI's own text
            messages are bounded earlier, by ``RTVIProcessor(max_text_chars=...)``.
        turn_detector: decides at each pause whether the user is done (e.g.
            :class:`voxloop.turns.SmartTurnDetector`); None: a fixed ``params.stop_secs`` of silence.

    Events: ``on_user_turn_started()``, ``on_user_turn_stopped(text)`` (text may be "" when nothing
    was recognised; then the LLM is not run), ``on_user_turn_idle()`` (see
    ``UserTurnParams.user_idle_timeout_secs``), ``on_user_speech_rejected(text)`` (speech taken for
    noise while the bot was busy).
    """

    def __init__(
        self,
        context: LLMContext,
        params: UserTurnParams | None = None,
        *,
        context_summarizer: ContextSummarizer | None = None,
        summarize_after_messages: int = 40,
        max_typed_text_chars: int | None = 16_384,
        turn_detector: EndOfTurnDetector | None = None,
        name: str | None = None,
    ) -> None:
        super().__init__(name=name)
        self.context = context
        self.params = params or UserTurnParams()
        self._turns = TurnController(self.params, uses_detector=turn_detector is not None)
        self._detector = turn_detector
        # The user's recent audio at 16 kHz mono, for the detector; where the open turn's audio starts in it.
        self._audio = PreRoll(_DETECTOR_WINDOW_SECS + _DETECTOR_PRE_SPEECH_SECS, _DETECTOR_RATE)
        self._audio_total = 0  # bytes ever added to _audio
        self._turn_audio_from = 0
        self._audio_converter: PCMConverter | None = None
        self._pause = 0  # counts pauses, so that a late verdict for an earlier one is dropped
        self._asked_early = False  # the detector was asked at the VAD's "ending", for the segment still open
        self._early_verdict: TurnVerdict | None = None  # its answer, if it came before the VAD's stop
        # Per pause being judged: the segments that must be transcribed first, and its transcript.
        self._transcripts: list[tuple[int, asyncio.Future[str]]] = []
        self._segments_closed = 0  # VAD stops seen
        self._segments_done = 0  # TranscriptionFinishedFrames seen
        self._last_words: tuple[SpokenWord, ...] = ()  # the last transcription's words, if the STT gave them
        self.speculate = turn_detector is not None
        self._speculated: str | None = None  # the words a speculative LLM run is answering
        self._detector_tasks = TaskSet(self)
        self._summarizer = context_summarizer
        self._summarize_after = summarize_after_messages
        self._max_typed_text_chars = max_typed_text_chars
        self._timer_task: asyncio.Task[None] | None = None  # the one sleeping until the next deadline
        self._timer_deadline: int | None = None
        self._timer_tasks = TaskSet(self)  # including those acting on a deadline
        self._run_tasks = TaskSet(self)
        self._register_event_handler("on_user_turn_started")
        self._register_event_handler("on_user_turn_stopped")
        self._register_event_handler("on_user_turn_idle")
        self._register_event_handler("on_user_speech_rejected")

    # -- public state ----------------------------------------------------------------------------

    @property
    def turn_controller(self) -> TurnController:
        return self._turns

    @property
    def user_turn_open(self) -> bool:
        return self._turns.turn_open

    # -- frames ----------------------------------------------------------------------------------

    async def process_frame(self, frame: Frame, direction: FrameDirection) -> None:
        turns, now = self._turns, self.clock.now_ns()
        if isinstance(frame, InputAudioRawFrame):
            await self.push_frame(frame, direction)
            if self._detector is not None and direction is DOWNSTREAM:
                self._keep_audio(frame)
        elif isinstance(frame, VADUserStartedSpeakingFrame):
            await self.push_frame(frame, direction)
            self._new_pause()
            await self._drop_speculation()  # the user goes on: that reply would answer half a sentence
            if not turns.turn_open:
                back = round((frame.start_secs + _DETECTOR_PRE_SPEECH_SECS) * _DETECTOR_RATE) * 2
                self._turn_audio_from = max(0, self._audio_total - back)
            await self._act(turns.on_vad_started(now, frame.start_secs))
        elif isinstance(frame, VADUserStoppedSpeakingFrame):
            await self.push_frame(frame, direction)
            self._segments_closed += 1
            await self._act(turns.on_vad_stopped(now, frame.stop_secs))
            if self._detector is not None and turns.turn_open:
                if not self._asked_early:
                    self._ask_detector()
                elif self._early_verdict is not None:
                    await self._act(turns.on_turn_verdict(now, self._early_verdict))
                self._asked_early, self._early_verdict = False, None
        elif isinstance(frame, VADSpeechEndingFrame):
            await self.push_frame(frame, direction)
            if self._detector is not None and turns.turn_open and turns.vad_speaking:
                self._new_pause()
                self._asked_early = True
                self._ask_detector(pad_secs=frame.until_stop_secs, quiet_secs=frame.quiet_secs, closing=1)
        elif isinstance(frame, VADSpeechResumedFrame):
            await self.push_frame(frame, direction)
            if self._asked_early:
                self._new_pause()  # the segment goes on: that answer was about half of it
            await self._act(turns.on_speech_resumed(now))
        elif isinstance(frame, UserSpeakingFrame):
            await self.push_frame(frame, direction)
            await self._act(turns.on_user_speaking(now))
        elif isinstance(frame, TranscriptionFrame):
            words = getattr(frame.result, "words", None)  # the STT's words with its confidence (Whisper's)
            words = (
                words if isinstance(words, tuple) and all(isinstance(w, SpokenWord) for w in words) else ()
            )
            self._last_words = words if frame.text.strip() else self._last_words
            await self._act(turns.on_transcription(now, frame.text))
        elif isinstance(frame, InterimTranscriptionFrame):
            await self._act(turns.on_interim(now, frame.text))
        elif isinstance(frame, TranslationFrame):
            pass  # consumed: the transcription carries the words
        elif isinstance(frame, TranscriptionFinishedFrame):
            self._segments_done += 1
            await self._act(turns.on_transcription_finished(now))
        elif isinstance(frame, BotStartedSpeakingFrame):
            await self.push_frame(frame, direction)
            await self._act(turns.on_bot_started(now))
        elif isinstance(frame, BotStoppedSpeakingFrame):
            await self.push_frame(frame, direction)
            await self._act(turns.on_bot_stopped(now))
        elif isinstance(frame, AssistantTurnStoppedFrame):
            await self.push_frame(frame, direction)
            await self._act(turns.on_response_done(now))
        elif isinstance(frame, InterruptionFrame):
            self._speculated = None  # the LLM drops it on the interruption too
            self._cancel_runs()
            await self.push_frame(frame, direction)
            await self._act(turns.on_response_done(now))
        elif isinstance(frame, InputTextRawFrame):
            await self._typed_text(frame.text)
        elif isinstance(frame, LLMRunFrame):
            await self._run_llm()
        elif isinstance(frame, LLMMessagesAppendFrame):
            self.context.add_messages(frame.messages)
            if frame.run_llm:
                await self._run_llm()
        elif isinstance(frame, LLMMessagesUpdateFrame):
            self.context.set_messages(frame.messages)
            if frame.run_llm:
                await self._run_llm()
        elif isinstance(frame, LLMSetToolsFrame):
            self.context.set_tools(frame.tools)
            await self.push_frame(frame, direction)  # a speech-to-speech service sends them at once
        elif isinstance(frame, LLMSetToolChoiceFrame):
            self.context.set_tool_choice(frame.tool_choice)
        elif isinstance(frame, EndFrame | CancelFrame):
            await self._stop_timer()
            self._cancel_runs()
            await self._flush_on_end()
            await self.push_frame(frame, direction)
        else:
            await self.push_frame(frame, direction)

    # -- actions ---------------------------------------------------------------------------------

    async def _act(self, actions: list[Action]) -> None:
        for action in actions:
            if isinstance(action, TurnStarted):
                await self._turn_started(action)
            elif isinstance(action, TurnEnded):
                await self._turn_ended(action)
            elif isinstance(action, SpeechRejected):
                logger.debug("%s: speech taken for noise while the bot was busy: %r", self, action.text)
                await self._call_event_handler("on_user_speech_rejected", action.text)
            elif isinstance(action, PauseBot):
                logger.debug("%s: user speech over the bot: pausing its output", self)
                await self.push_frame(BotOutputPauseFrame(), DOWNSTREAM)
            elif isinstance(action, ResumeBot):
                logger.debug("%s: resuming the bot's output", self)
                await self.push_frame(BotOutputResumeFrame(), DOWNSTREAM)
            elif isinstance(action, UserIdle):
                await self._call_event_handler("on_user_turn_idle")
        if self._transcripts:
            self._words_in()
        await self._maybe_speculate()
        self._reschedule()

    async def _turn_started(self, action: TurnStarted) -> None:
        logger.debug("%s: user turn started (bot %s)", self, action.bot_state)
        self._last_words = ()
        self._cancel_runs()
        await self.broadcast_frame(UserStartedSpeakingFrame)
        if action.interrupt:
            await self.broadcast_interruption()
        await self._call_event_handler("on_user_turn_started")

    async def _turn_ended(self, action: TurnEnded) -> None:
        text = action.text
        logger.debug("%s: user turn ended%s: %r", self, " (forced)" if action.forced else "", text)
        if text and self._speculated == text:
            self._speculated = None
            self.context.add_message({"role": "user", "content": text})
            logger.debug("%s: the speculative reply is the answer", self)
            await self._act(self._turns.on_response_started(self.clock.now_ns()))
            await self.push_frame(LLMSpeculationFrame("confirm", self.context), DOWNSTREAM)
        elif text:
            await self._drop_speculation()
            self.context.add_message({"role": "user", "content": text})
            await self._run_llm()
        else:
            last = self.context.last_message()
            if action.interrupted_thinking and last is not None and last.get("role") == "user":
                # Nothing was said, but the turn cut off a reply nobody heard: ask again.
                await self._run_llm()
        await self.broadcast_frame(UserStoppedSpeakingFrame)
        await self._call_event_handler("on_user_turn_stopped", text)

    async def _typed_text(self, text: str) -> None:
        text = text.strip()
        if not text:
            return
        limit = self._max_typed_text_chars
        if limit is not None and len(text) > limit:
            await self.push_error(
                f"typed text of {len(text)} characters is over the limit of {limit}: not sent"
            )
            return
        if self._turns.bot_state is not BotState.LISTENING and self.params.allow_interruptions:
            await self.broadcast_interruption()
        self.context.add_message({"role": "user", "content": text})
        await self._run_llm()

    async def _flush_on_end(self) -> None:
        """The session ends: keep what the user said in the context, but run nothing."""
        ended = self._turns.on_end()
        if ended is not None and ended.text:
            self.context.add_message({"role": "user", "content": ended.text})
            await self._call_event_handler("on_user_turn_stopped", ended.text)

    # -- end-of-turn detection ------------------------------------------------------------------

    def _keep_audio(self, frame: InputAudioRawFrame) -> None:
        pcm = frame.audio
        if frame.sample_rate != _DETECTOR_RATE or frame.num_channels != 1:
            if self._audio_converter is None:
                self._audio_converter = PCMConverter(_DETECTOR_RATE)
            pcm = self._audio_converter.convert(pcm, frame.sample_rate, frame.num_channels)
        self._audio.append(pcm)
        self._audio_total += len(pcm)

    def _new_pause(self) -> None:
        self._pause += 1
        self._asked_early, self._early_verdict = False, None

    def _ask_detector(self, *, pad_secs: float = 0.0, quiet_secs: float = 0.0, closing: int = 0) -> None:
        """Judge the pause. ``pad_secs``: lengthen the audio by that much, repeating its last ``quiet_secs``
        (the quiet the VAD is waiting out); ``closing``: segments not closed yet whose words it needs."""
        kept = self._audio.get()
        turn_bytes = min(len(kept), self._audio_total - self._turn_audio_from)
        audio = kept[len(kept) - turn_bytes :] if turn_bytes > 0 else b""
        pad = round(pad_secs * _DETECTOR_RATE) * 2
        quiet_bytes = min(pad, round(quiet_secs * _DETECTOR_RATE) * 2)
        if pad and quiet_bytes and len(audio) >= quiet_bytes:
            quiet = audio[-quiet_bytes:]
            audio += (quiet * (pad // len(quiet) + 1))[:pad]
        transcript: asyncio.Future[str] = asyncio.get_running_loop().create_future()
        self._transcripts.append((self._segments_closed + closing, transcript))
        self._words_in()
        self._detector_tasks.spawn(self._judge_pause(self._pause, audio, transcript), f"{self.name}::eot")

    def _words_in(self) -> None:
        """Resolve the transcripts of the pauses whose segments are all transcribed (the STT keeps order)."""
        while self._transcripts and self._transcripts[0][0] <= self._segments_done:
            _, transcript = self._transcripts.pop(0)
            if not transcript.done():
                transcript.set_result(TurnTranscript(self._turns.text, self._last_words))

    async def _judge_pause(self, pause: int, audio: bytes, transcript: asyncio.Future[str]) -> None:
        assert self._detector is not None
        try:
            verdict = TurnVerdict.of(await self._detector.turn_is_complete(audio, _DETECTOR_RATE, transcript))
        except Exception as exc:
            logger.exception("%s: end-of-turn detector failed", self)
            await self.push_error(f"{self.name}: end-of-turn detector failed: {exc}", exc)
            verdict = TurnVerdict.NOT_DONE
        if pause != self._pause or not self._turns.turn_open:
            return  # the user spoke again (or the turn ended) meanwhile
        if self._turns.vad_speaking:  # judged at the VAD's "ending": the answer counts at its stop
            self._early_verdict = verdict
            return
        logger.debug("%s: end-of-turn detector: %s", self, verdict.value)
        await self._act(self._turns.on_turn_verdict(self.clock.now_ns(), verdict))

    # -- speculation -----------------------------------------------------------------------------

    async def _maybe_speculate(self) -> None:
        turns = self._turns
        if (
            not self.speculate
            or not turns.turn_open
            or turns.vad_speaking
            or turns.verdict is TurnVerdict.DONE  # the turn ends right now anyway
            or self._segments_done < self._segments_closed  # words still on their way
        ):
            return
        text = turns.text
        if not text or text == self._speculated:
            return
        await self._drop_speculation()
        self._speculated = text
        tentative = LLMContext(
            [*self.context.messages, {"role": "user", "content": text}],
            tools=self.context.tools,
            tool_choice=self.context.tool_choice,
        )
        logger.debug("%s: speculating on %r", self, text)
        await self.push_frame(LLMSpeculationFrame("start", tentative), DOWNSTREAM)

    async def _drop_speculation(self) -> None:
        if self._speculated is not None:
            self._speculated = None
            await self.push_frame(LLMSpeculationFrame("drop"), DOWNSTREAM)

    # -- running the LLM -----------------------------------------------------------------------

    async def _run_llm(self) -> None:
        await self._act(self._turns.on_response_started(self.clock.now_ns()))
        if self._summarizer is not None and len(self.context.messages) > self._summarize_after:
            # Off the audio path: the summary and the push happen on a task of their own, cancelled if
            # the user barges in first.
            self._run_tasks.spawn(self._summarize_then_push(), f"{self.name}::summarize")
            return
        await self.push_frame(LLMContextFrame(context=self.context), DOWNSTREAM)

    async def _summarize_then_push(self) -> None:
        assert self._summarizer is not None
        try:
            await self._summarizer(self.context)
        except Exception as exc:
            logger.exception("%s: context summarizer failed", self)
            await self.push_error(f"{self.name}: context summarizer failed: {exc}", exc)
        await self.push_frame(LLMContextFrame(context=self.context), DOWNSTREAM)

    def _cancel_runs(self) -> None:
        self._run_tasks.cancel()

    # -- timer -------------------------------------------------------------------------------------

    def _reschedule(self) -> None:
        deadline = self._turns.next_deadline(self.clock.now_ns())
        # A pending timer that fires no later is kept: it re-evaluates and sets the next one. That spares
        # a new task per speech tick (10 a second while the user talks move the turn's safety deadline).
        pending = self._timer_deadline
        keep = self._timer_task is not None and pending is not None and deadline is not None
        if keep and pending <= deadline:  # type: ignore[operator]
            return
        if self._timer_task is not None:
            self._timer_task.cancel()
            self._timer_task = None
        self._timer_deadline = deadline
        if deadline is not None:
            timer = self._wait_for_deadline(deadline)
            self._timer_task = self._timer_tasks.spawn(timer, f"{self.name}::turn")

    async def _wait_for_deadline(self, deadline: int) -> None:
        delay = (deadline - self.clock.now_ns()) / 1e9
        if delay > 0:
            await self.clock.sleep(delay)
        # From here on this task does work that must not be cancelled by a reschedule.
        if self._timer_task is asyncio.current_task():
            self._timer_task = None
            self._timer_deadline = None
        try:
            await self._act(self._turns.on_timer(self.clock.now_ns()))
        except Exception as exc:
            await self._report_timer_error(exc)

    async def _report_timer_error(self, exc: Exception) -> None:
        logger.exception("%s: turn timer failed", self)
        await self.push_error(f"{self.name}: {type(exc).__name__}: {exc}", exc)

    async def _stop_timer(self) -> None:
        task, self._timer_task = self._timer_task, None
        self._timer_deadline = None
        if task is not None and task is not asyncio.current_task():
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)

    async def cleanup(self) -> None:
        await self._stop_timer()
        self._run_tasks.cancel()  # all sets at once, then wait for each
        self._detector_tasks.cancel()
        await self._timer_tasks.cancel_and_wait()
        await self._run_tasks.cancel_and_wait()
        await self._detector_tasks.cancel_and_wait()
        await super().cleanup()
