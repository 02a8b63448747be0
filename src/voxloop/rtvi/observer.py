"""RTVIObserver: tells the client what the bot is doing, as RTVI messages.

It watches every push in the pipeline (see :class:`voxloop.pipeline.BaseObserver`) and maps
frames to messages. Rules that keep the client's view true:

- Each frame is reported once, however many hops it makes (remembered weakly: memory stays flat
  over a long call), and a broadcast pair (one frame each way) is reported once.
- Bot text (``bot-output``, ``bot-tts-text``) is taken from where the output transport pushes it,
  which is when its audio plays; text that arrives before the bot started speaking waits for
  ``bot-started-speaking``, and text whose audio was interrupted before it played is dropped.
"""

from __future__ import annotations

import array
import asyncio
import logging
import math
import threading
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from ..frames import (
    AggregatedTextFrame,
    AggregatedTextProgressFrame,
    BotStartedSpeakingFrame,
    BotStoppedSpeakingFrame,
    Frame,
    FunctionCallCancelFrame,
    FunctionCallInProgressFrame,
    FunctionCallResultFrame,
    FunctionCallsStartedFrame,
    InputAudioRawFrame,
    InterimTranscriptionFrame,
    InterruptionFrame,
    LLMContextFrame,
    LLMFullResponseEndFrame,
    LLMTextFrame,
    MetricsFrame,
    OutputAudioRawFrame,
    TranscriptionFrame,
)
from ..pipeline import UPSTREAM, BaseObserver, FramePushed, Mailbox, SeenFrames
from . import _mapping as mapping
from ._mapping import EVENTS, FunctionCallReportLevel, Message, RTVIObserverParams, TextTransform
from .frames import RTVIConfigureObserverFrame, RTVIServerMessageFrame, RTVIServerResponseFrame

if TYPE_CHECKING:
    from .processor import RTVIProcessor

logger = logging.getLogger("voxloop.rtvi")

__all__ = ["FunctionCallReportLevel", "RTVIObserver", "RTVIObserverParams", "TextTransform"]

_PLAYED_TYPES = (AggregatedTextFrame, AggregatedTextProgressFrame, OutputAudioRawFrame)


class _AudioLevel:
    """RMS level (0..1) of recent audio, reported at most once per period."""

    def __init__(self, period_ns: int) -> None:
        self.period_ns = period_ns
        self.last_sent_ns = 0
        self._sum_squares = 0.0
        self._count = 0

    def add(self, audio: bytes) -> None:
        samples = array.array("h")
        samples.frombytes(audio[: len(audio) - len(audio) % 2])
        self._sum_squares += math.fsum(s * s for s in samples)
        self._count += len(samples)

    def take(self, now_ns: int) -> float | None:
        if now_ns - self.last_sent_ns < self.period_ns or not self._count:
            return None
        level = min(1.0, math.sqrt(self._sum_squares / self._count) / 32768.0)
        self.last_sent_ns, self._sum_squares, self._count = now_ns, 0.0, 0
        return level


class _Sentences:
    """The LLM's text gathered into whole sentences (for ``bot-transcription``)."""

    _ENDS = (".", "!", "?", "。", "！", "？")

    def __init__(self) -> None:
        # Pieces since the last sentence end; what they hold has no end mark, so only a new piece
        # needs scanning, and they are joined once per sentence (not copied on every token).
        self._pieces: list[str] = []

    def add(self, text: str) -> str | None:
        """Add text; returns the sentences it completed, if it ended one (the rest waits)."""
        for i in range(len(text) - 1, -1, -1):
            if text[i] in self._ENDS and (i + 1 == len(text) or text[i + 1].isspace()):
                self._pieces.append(text[: i + 1])
                done = "".join(self._pieces).strip()
                self._pieces = [text[i + 1 :]]
                return done or None
        self._pieces.append(text)
        return None

    def take(self) -> str | None:
        text = "".join(self._pieces).strip()
        self._pieces = []
        return text or None


class _LogForwarder(logging.Handler):
    """Hands ``voxloop`` log records to the observer, from whichever thread logs them.

    A model's worker thread logs too; the mailbox is the loop's alone, so records from other
    threads are handed over with ``call_soon_threadsafe``.
    """

    def __init__(self, observer: RTVIObserver, loop: asyncio.AbstractEventLoop) -> None:
        super().__init__(logging.INFO)
        self._observer = observer
        self._loop = loop
        self._loop_thread = threading.get_ident()

    def emit(self, record: logging.LogRecord) -> None:
        if record.name.startswith("voxloop.rtvi"):
            return  # never report on our own reporting
        text = self.format(record)
        if threading.get_ident() == self._loop_thread:
            self._observer._queue_log(text)
            return
        try:
            self._loop.call_soon_threadsafe(self._observer._queue_log, text)
        except RuntimeError:
            pass  # the loop has closed: the session is over


class RTVIObserver(BaseObserver):
    """Reports pipeline activity to the client through an :class:`RTVIProcessor`.

    It is shown only the frame types it maps (:attr:`frame_types`, set from ``params`` when it is
    created), and audio only when audio levels are reported, so the bulk of the traffic never
    reaches its queue.
    """

    def __init__(self, rtvi: RTVIProcessor, params: RTVIObserverParams | None = None) -> None:
        self._rtvi = rtvi
        self.params = params or RTVIObserverParams()
        self._seen = SeenFrames()
        self._handlers: dict[type[Frame], Callable[[Any], Awaitable[None]] | None] = {}
        self._bot_speaking = False
        self._held_output: list[Frame] = []
        self._sentences = _Sentences()
        period = int(self.params.audio_level_period_secs * 1e9)
        self._user_level = _AudioLevel(period)
        self._bot_level = _AudioLevel(period)
        self._logs: Mailbox[str] = Mailbox()
        self._log_task: asyncio.Task[None] | None = None
        self._log_handler: _LogForwarder | None = None
        skipped: list[type[Frame]] = []  # audio is most of the traffic: shown only for levels
        if not self.params.user_audio_level_enabled:
            skipped.append(InputAudioRawFrame)
        if not self.params.bot_audio_level_enabled:
            skipped.append(OutputAudioRawFrame)
        self.frame_types = tuple(t for t in _DISPATCH if t not in skipped)

    @property
    def rtvi(self) -> RTVIProcessor:
        """The processor this observer reports through."""
        return self._rtvi

    def take_over(self) -> BaseObserver | None:
        """Added to a task by the app: the processor reports through this one, not its own."""
        return self._rtvi._use_observer(self)

    # -- observer hooks ----------------------------------------------------------------------

    async def on_pipeline_started(self) -> None:
        if self.params.system_logs_enabled and self._log_task is None:
            self._log_handler = _LogForwarder(self, asyncio.get_running_loop())
            logging.getLogger("voxloop").addHandler(self._log_handler)
            self._log_task = asyncio.create_task(self._send_logs(), name="rtvi::system-logs")

    async def on_pipeline_finished(self) -> None:
        if self._log_handler is not None:
            logging.getLogger("voxloop").removeHandler(self._log_handler)
            self._log_handler = None
        if self._log_task is not None:
            self._log_task.cancel()
            await asyncio.wait({self._log_task})
            self._log_task = None

    async def on_push_frame(self, data: FramePushed) -> None:
        frame = data.frame
        handler = self._handler_for(type(frame))
        if handler is None:
            return
        if data.source in self.params.ignored_sources:
            return
        if data.direction is UPSTREAM and (
            frame.broadcast_sibling_id is not None
            or isinstance(frame, RTVIServerMessageFrame | RTVIServerResponseFrame)
        ):
            return  # the downstream copy is the one reported (the processor sends upstream ones)
        if isinstance(frame, _PLAYED_TYPES) and not (
            data.source.plays_output and data.direction is not UPSTREAM
        ):
            return  # not played yet: wait for the hop out of the output transport
        if not self._seen.first_sight(frame):
            return
        await handler(frame)

    def _handler_for(self, frame_type: type[Frame]) -> Callable[[Any], Awaitable[None]] | None:
        try:
            return self._handlers[frame_type]
        except KeyError:
            pass
        handler = None
        for base in frame_type.__mro__:
            name = _DISPATCH.get(base)
            if name is not None:
                handler = getattr(self, name)
                break
        # Audio is most of the traffic: skip it entirely unless levels are wanted.
        if (handler == self._user_audio and not self.params.user_audio_level_enabled) or (
            handler == self._bot_audio and not self.params.bot_audio_level_enabled
        ):
            handler = None
        self._handlers[frame_type] = handler
        return handler

    async def _send(self, message: Message | None) -> None:
        if message is not None:
            await self._rtvi.send(message)

    # -- speaking ----------------------------------------------------------------------------

    async def _event(self, frame: Frame) -> None:
        """Frames that map to one payload-free message, gated by one setting."""
        if isinstance(frame, LLMFullResponseEndFrame) and (rest := self._sentences.take()):
            await self._bot_transcription(rest)  # the response's last words, unpunctuated
        await self._send(mapping.event_message(frame, self.params))

    async def _bot_started(self, frame: BotStartedSpeakingFrame) -> None:
        self._bot_speaking = True
        await self._send(mapping.event_message(frame, self.params))
        await self._release_held_output()

    async def _bot_stopped(self, frame: BotStoppedSpeakingFrame) -> None:
        await self._release_held_output()  # their audio has played by now
        self._bot_speaking = False
        await self._send(mapping.event_message(frame, self.params))

    async def _interruption(self, frame: InterruptionFrame) -> None:
        self._held_output.clear()  # never played: the user did not hear it
        self._sentences.take()
        await self._send(mapping.event_message(frame, self.params))

    # -- user --------------------------------------------------------------------------------

    async def _transcription(self, frame: TranscriptionFrame | InterimTranscriptionFrame) -> None:
        await self._send(mapping.transcription_message(frame, self.params))

    async def _context(self, frame: LLMContextFrame) -> None:
        await self._send(mapping.user_llm_text_message(frame, self.params))

    async def _user_audio(self, frame: InputAudioRawFrame) -> None:
        if self.params.user_audio_level_enabled:
            await self._audio_level(self._user_level, frame.audio, "user-audio-level")

    async def _bot_audio(self, frame: OutputAudioRawFrame) -> None:
        if self.params.bot_audio_level_enabled:
            await self._audio_level(self._bot_level, frame.audio, "bot-audio-level")

    async def _audio_level(self, meter: _AudioLevel, audio: bytes, type_: str) -> None:
        meter.add(audio)
        level = meter.take(self._rtvi.clock.now_ns())
        if level is not None:
            await self._send(mapping.audio_level_message(type_, level))

    # -- bot ---------------------------------------------------------------------------------

    async def _llm_text(self, frame: LLMTextFrame) -> None:
        await self._send(mapping.llm_text_message(frame, self.params))
        if self._rtvi.client_generation < 2 and (sentences := self._sentences.add(frame.text)):
            await self._bot_transcription(sentences)

    async def _bot_transcription(self, text: str) -> None:
        generation = self._rtvi.client_generation
        await self._send(mapping.bot_transcription_message(text, self.params, generation))

    async def _bot_text(self, frame: AggregatedTextFrame | AggregatedTextProgressFrame) -> None:
        spoken = isinstance(frame, AggregatedTextProgressFrame) or frame.will_be_spoken
        if spoken and not self._bot_speaking:
            self._held_output.append(frame)  # its audio has not started yet
            return
        await self._report_bot_text(frame)

    async def _release_held_output(self) -> None:
        held, self._held_output = self._held_output, []
        for frame in held:
            await self._report_bot_text(frame)

    async def _report_bot_text(self, frame: Frame) -> None:
        assert isinstance(frame, AggregatedTextFrame | AggregatedTextProgressFrame)
        kind = str(frame.aggregated_by)
        if self.params.skip_aggregator_types and kind in self.params.skip_aggregator_types:
            return
        text = await self._transform(frame.text, kind)
        await self._send(mapping.bot_tts_text_message(frame, text, self.params))
        if not self.params.bot_output_enabled:
            return
        generation = self._rtvi.client_generation
        progress = ("", "")
        if mapping.needs_progress_texts(frame, generation):
            assert isinstance(frame, AggregatedTextProgressFrame)
            accumulated = await self._transform(frame.accumulated_text, kind)
            progress = (accumulated, await self._transform(frame.remaining_text, kind))
        await self._send(mapping.bot_output_message(frame, text, kind, generation, progress))

    async def _transform(self, text: str, kind: str) -> str:
        for wanted, transform in self.params.bot_output_transforms or ():
            if wanted in ("*", kind) and text:
                text = await transform(text, kind)
        return text

    # -- function calls ----------------------------------------------------------------------

    async def _calls_started(self, frame: FunctionCallsStartedFrame) -> None:
        for message in mapping.function_calls_started_messages(frame, self.params):
            await self._send(message)

    async def _call_in_progress(self, frame: FunctionCallInProgressFrame) -> None:
        generation = self._rtvi.client_generation
        await self._send(mapping.function_call_in_progress_message(frame, self.params, generation))

    async def _call_stopped(self, frame: FunctionCallResultFrame | FunctionCallCancelFrame) -> None:
        await self._send(mapping.function_call_stopped_message(frame, self.params))

    # -- metrics, configuration, server messages, logs ---------------------------------------

    async def _metrics(self, frame: MetricsFrame) -> None:
        await self._send(mapping.metrics_message(frame, self.params))

    async def _configure(self, frame: RTVIConfigureObserverFrame) -> None:
        if frame.function_call_report_level is not None:
            self.params.function_call_report_level = {
                name: FunctionCallReportLevel(level)
                for name, level in frame.function_call_report_level.items()
            }
        if frame.vad_user_speaking_enabled is not None:
            self.params.vad_user_speaking_enabled = frame.vad_user_speaking_enabled

    async def _server_message(self, frame: RTVIServerMessageFrame) -> None:
        await self._send(mapping.server_message_for(frame))

    async def _server_response(self, frame: RTVIServerResponseFrame) -> None:
        await self._rtvi.send_response(frame)

    def _queue_log(self, text: str) -> None:
        self._logs.put(text)

    async def _send_logs(self) -> None:
        logs = self._logs
        while True:
            await logs.wait_for_item()
            for text in logs.take_all():
                await self._send(mapping.system_log_message(text))


# Frame type -> observer method; subclasses of a listed type use the nearest listed base.
_DISPATCH: dict[type[Frame], str] = {
    **dict.fromkeys(EVENTS, "_event"),
    BotStartedSpeakingFrame: "_bot_started",
    BotStoppedSpeakingFrame: "_bot_stopped",
    InterruptionFrame: "_interruption",
    TranscriptionFrame: "_transcription",
    InterimTranscriptionFrame: "_transcription",
    LLMContextFrame: "_context",
    InputAudioRawFrame: "_user_audio",
    OutputAudioRawFrame: "_bot_audio",
    LLMTextFrame: "_llm_text",
    AggregatedTextFrame: "_bot_text",
    AggregatedTextProgressFrame: "_bot_text",
    FunctionCallsStartedFrame: "_calls_started",
    FunctionCallInProgressFrame: "_call_in_progress",
    FunctionCallResultFrame: "_call_stopped",
    FunctionCallCancelFrame: "_call_stopped",
    MetricsFrame: "_metrics",
    RTVIConfigureObserverFrame: "_configure",
    RTVIServerMessageFrame: "_server_message",
    RTVIServerResponseFrame: "_server_response",
}
