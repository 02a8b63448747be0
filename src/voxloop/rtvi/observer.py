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
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from enum import StrEnum
from typing import TYPE_CHECKING, Any

from ..frames import (
    AggregatedTextFrame,
    AggregatedTextProgressFrame,
    AggregationType,
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
    LLMFullResponseStartFrame,
    LLMTextFrame,
    LLMUsageMetricsData,
    MetricsFrame,
    OutputAudioRawFrame,
    ProcessingMetricsData,
    STTUsageMetricsData,
    TranscriptionFrame,
    TTFBMetricsData,
    TTSStartedFrame,
    TTSStoppedFrame,
    TTSTextFrame,
    TTSUsageMetricsData,
    UserMuteStartedFrame,
    UserMuteStoppedFrame,
    UserStartedSpeakingFrame,
    UserStoppedSpeakingFrame,
    VADUserStartedSpeakingFrame,
    VADUserStoppedSpeakingFrame,
)
from ..pipeline import UPSTREAM, BaseObserver, FrameProcessor, FramePushed, Mailbox, SeenFrames
from .frames import RTVIConfigureObserverFrame, RTVIServerMessageFrame
from .messages import server_message

if TYPE_CHECKING:
    from .processor import RTVIProcessor

logger = logging.getLogger("voxloop.rtvi")

TextTransform = Callable[[str, str], Awaitable[str]]


class FunctionCallReportLevel(StrEnum):
    """How much the client hears about function calls."""

    DISABLED = "disabled"  # nothing
    NONE = "none"  # that a call happened (its id)
    NAME = "name"  # and which function
    FULL = "full"  # and its arguments and result


@dataclass
class RTVIObserverParams:
    """What the observer reports. Defaults follow the published clients' expectations."""

    bot_output_enabled: bool = True
    bot_llm_enabled: bool = True
    bot_tts_enabled: bool = True
    bot_speaking_enabled: bool = True
    bot_audio_level_enabled: bool = False
    user_llm_enabled: bool = True
    user_speaking_enabled: bool = True
    vad_user_speaking_enabled: bool = False
    user_mute_enabled: bool = True
    user_transcription_enabled: bool = True
    user_audio_level_enabled: bool = False
    metrics_enabled: bool = True
    system_logs_enabled: bool = False
    ignored_sources: list[FrameProcessor] = field(default_factory=list)
    #: Aggregation types (e.g. a custom "secret") left out of bot-output and bot-tts-text.
    skip_aggregator_types: list[str] | None = None
    #: ``(aggregation type or "*", async fn(text, aggregation_type) -> text)`` applied in order.
    bot_output_transforms: list[tuple[str, TextTransform]] | None = None
    audio_level_period_secs: float = 0.15
    #: Per function name, or ``"*"`` for the rest.
    function_call_report_level: dict[str, FunctionCallReportLevel] = field(
        default_factory=lambda: {"*": FunctionCallReportLevel.NONE}
    )


_PLAYED_TYPES = (AggregatedTextFrame, AggregatedTextProgressFrame, OutputAudioRawFrame)
_WORDISH = {AggregationType.WORD.value, AggregationType.TOKEN.value}


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


class _LogForwarder(logging.Handler):
    def __init__(self, observer: RTVIObserver) -> None:
        super().__init__(logging.INFO)
        self._observer = observer

    def emit(self, record: logging.LogRecord) -> None:
        if record.name.startswith("voxloop.rtvi"):
            return  # never report on our own reporting
        self._observer._queue_log(self.format(record))


class RTVIObserver(BaseObserver):
    """Reports pipeline activity to the client through an :class:`RTVIProcessor`."""

    def __init__(self, rtvi: RTVIProcessor, params: RTVIObserverParams | None = None) -> None:
        self._rtvi = rtvi
        self.params = params or RTVIObserverParams()
        self._seen = SeenFrames()
        self._handlers: dict[type[Frame], Callable[[Any], Awaitable[None]] | None] = {}
        self._bot_speaking = False
        self._held_output: list[Frame] = []
        period = int(self.params.audio_level_period_secs * 1e9)
        self._user_level = _AudioLevel(period)
        self._bot_level = _AudioLevel(period)
        self._logs: Mailbox[str] = Mailbox()
        self._log_task: asyncio.Task[None] | None = None
        self._log_handler: _LogForwarder | None = None

    # -- observer hooks ----------------------------------------------------------------------

    async def on_pipeline_started(self) -> None:
        if self.params.system_logs_enabled and self._log_task is None:
            self._log_handler = _LogForwarder(self)
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
            frame.broadcast_sibling_id is not None or isinstance(frame, RTVIServerMessageFrame)
        ):
            return  # the downstream copy is the one reported
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

    async def _send(self, type_: str, data: Any = None) -> None:
        await self._rtvi.send(server_message(type_, data))

    # -- speaking ----------------------------------------------------------------------------

    async def _event(self, frame: Frame) -> None:
        """Frames that map to one payload-free message, gated by one setting."""
        base = next(t for t in type(frame).__mro__ if t in _EVENTS)  # subclasses map like their base
        setting, message = _EVENTS[base]
        if getattr(self.params, setting):
            await self._send(message)

    async def _bot_started(self, frame: BotStartedSpeakingFrame) -> None:
        self._bot_speaking = True
        if self.params.bot_speaking_enabled:
            await self._send("bot-started-speaking")
        await self._release_held_output()

    async def _bot_stopped(self, frame: BotStoppedSpeakingFrame) -> None:
        await self._release_held_output()  # their audio has played by now
        self._bot_speaking = False
        if self.params.bot_speaking_enabled:
            await self._send("bot-stopped-speaking")

    async def _interruption(self, frame: InterruptionFrame) -> None:
        self._held_output.clear()  # never played: the user did not hear it
        if self.params.bot_speaking_enabled:
            await self._send("bot-interrupted")

    # -- user --------------------------------------------------------------------------------

    async def _transcription(self, frame: TranscriptionFrame | InterimTranscriptionFrame) -> None:
        if self.params.user_transcription_enabled:
            final = isinstance(frame, TranscriptionFrame)
            await self._send(
                "user-transcription",
                {
                    "text": frame.text,
                    "user_id": frame.user_id,
                    "timestamp": frame.timestamp,
                    "final": final,
                },
            )

    async def _context(self, frame: LLMContextFrame) -> None:
        if not self.params.user_llm_enabled:
            return
        context = frame.context
        messages = (
            context.get("messages") if isinstance(context, dict) else getattr(context, "messages", None)
        )
        if not messages:
            return
        last = messages[-1]
        if not isinstance(last, dict) or last.get("role") != "user":
            return
        content = last.get("content")
        if isinstance(content, list):
            content = " ".join(
                part.get("text", "")
                for part in content
                if isinstance(part, dict) and part.get("type") == "text"
            )
        if isinstance(content, str) and content:
            await self._send("user-llm-text", {"text": content})

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
            await self._send(type_, {"value": round(level, 4)})

    # -- bot ---------------------------------------------------------------------------------

    async def _llm_text(self, frame: LLMTextFrame) -> None:
        if self.params.bot_llm_enabled:
            await self._send("bot-llm-text", {"text": frame.text})

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
        if isinstance(frame, TTSTextFrame) and self.params.bot_tts_enabled:
            await self._send("bot-tts-text", {"text": text})
        if self.params.bot_output_enabled:
            data = await self._bot_output(frame, text, kind)
            if data is not None:
                await self._send("bot-output", data)

    async def _bot_output(
        self, frame: AggregatedTextFrame | AggregatedTextProgressFrame, text: str, kind: str
    ) -> dict[str, Any] | None:
        if self._rtvi.client_generation < 2:  # 1.x clients: one message per piece, `spoken`
            if isinstance(frame, AggregatedTextProgressFrame):
                return None
            return {"text": text, "aggregated_by": kind, "spoken": isinstance(frame, TTSTextFrame)}
        if isinstance(frame, AggregatedTextProgressFrame):
            accumulated = await self._transform(frame.accumulated_text, kind)
            remaining = await self._transform(frame.remaining_text, kind)
            return {
                "text": text,
                "aggregated_by": kind,
                "segment_id": frame.segment_id,
                "will_be_spoken": True,
                "spoken_status": "completed" if not frame.remaining_text else "in-progress",
                "spoken_progress": {"accumulated_text": accumulated, "remaining_text": remaining},
            }
        if kind in _WORDISH:
            return None  # current clients follow words through the progress messages
        data: dict[str, Any] = {"text": text, "aggregated_by": kind, "segment_id": frame.id}
        if isinstance(frame, TTSTextFrame):
            data["will_be_spoken"] = True
            data["spoken_status"] = "completed"
            data["spoken_progress"] = {"accumulated_text": text, "remaining_text": ""}
        elif frame.will_be_spoken:
            data["will_be_spoken"] = True
            data["spoken_status"] = "new"
            data["spoken_progress"] = {"accumulated_text": "", "remaining_text": text}
        else:
            data["will_be_spoken"] = False
        return data

    async def _transform(self, text: str, kind: str) -> str:
        for wanted, transform in self.params.bot_output_transforms or ():
            if wanted in ("*", kind) and text:
                text = await transform(text, kind)
        return text

    # -- function calls ----------------------------------------------------------------------

    def _report_level(self, function_name: str) -> FunctionCallReportLevel:
        levels = self.params.function_call_report_level
        level = levels.get(function_name, levels.get("*", FunctionCallReportLevel.NONE))
        return FunctionCallReportLevel(level)

    async def _calls_started(self, frame: FunctionCallsStartedFrame) -> None:
        for call in frame.function_calls:
            level = self._report_level(call.function_name)
            if level is FunctionCallReportLevel.DISABLED:
                continue
            data = {} if level is FunctionCallReportLevel.NONE else {"function_name": call.function_name}
            await self._send("llm-function-call-started", data)

    async def _call_in_progress(self, frame: FunctionCallInProgressFrame) -> None:
        if self._rtvi.client_generation == 0:  # the 0.x clients' message, which runs their handler
            legacy = {"function_name": frame.function_name, "tool_call_id": frame.tool_call_id}
            await self._send("llm-function-call", {**legacy, "args": dict(frame.arguments)})
            return
        level = self._report_level(frame.function_name)
        if level is FunctionCallReportLevel.DISABLED:
            return
        data: dict[str, Any] = {"tool_call_id": frame.tool_call_id}
        if level in (FunctionCallReportLevel.NAME, FunctionCallReportLevel.FULL):
            data["function_name"] = frame.function_name
        if level is FunctionCallReportLevel.FULL:
            data["arguments"] = dict(frame.arguments)
        await self._send("llm-function-call-in-progress", data)

    async def _call_stopped(self, frame: FunctionCallResultFrame | FunctionCallCancelFrame) -> None:
        level = self._report_level(frame.function_name)
        if level is FunctionCallReportLevel.DISABLED:
            return
        cancelled = isinstance(frame, FunctionCallCancelFrame)
        data: dict[str, Any] = {"tool_call_id": frame.tool_call_id, "cancelled": cancelled}
        if level in (FunctionCallReportLevel.NAME, FunctionCallReportLevel.FULL):
            data["function_name"] = frame.function_name
        full = level is FunctionCallReportLevel.FULL
        if full and isinstance(frame, FunctionCallResultFrame) and frame.result:
            data["result"] = frame.result
        await self._send("llm-function-call-stopped", data)

    # -- metrics, configuration, server messages, logs ---------------------------------------

    async def _metrics(self, frame: MetricsFrame) -> None:
        if not self.params.metrics_enabled:
            return
        groups: dict[str, list[dict[str, Any]]] = {}
        for item in frame.data:
            base: dict[str, Any] = {"processor": item.processor}
            if item.model is not None:
                base["model"] = item.model
            if isinstance(item, TTFBMetricsData):
                groups.setdefault("ttfb", []).append({**base, "value": item.value})
            elif isinstance(item, ProcessingMetricsData):
                groups.setdefault("processing", []).append({**base, "value": item.value})
            elif isinstance(item, LLMUsageMetricsData) and item.value is not None:
                usage = {k: v for k, v in vars(item.value).items() if v is not None}
                groups.setdefault("tokens", []).append({**base, **usage})
            elif isinstance(item, TTSUsageMetricsData):
                groups.setdefault("characters", []).append({**base, "value": item.value})
            elif isinstance(item, STTUsageMetricsData):
                value = {"audio_seconds": item.audio_seconds}
                groups.setdefault("stt_usage", []).append({**base, "value": value})
        if groups:
            await self._send("metrics", groups)

    async def _configure(self, frame: RTVIConfigureObserverFrame) -> None:
        if frame.function_call_report_level is not None:
            self.params.function_call_report_level = {
                name: FunctionCallReportLevel(level)
                for name, level in frame.function_call_report_level.items()
            }
        if frame.vad_user_speaking_enabled is not None:
            self.params.vad_user_speaking_enabled = frame.vad_user_speaking_enabled

    async def _server_message(self, frame: RTVIServerMessageFrame) -> None:
        await self._send("server-message", frame.data)

    def _queue_log(self, text: str) -> None:
        self._logs.put(text)

    async def _send_logs(self) -> None:
        logs = self._logs
        while True:
            await logs.wait_for_item()
            for text in logs.take_all():
                await self._send("system-log", {"text": text})


# Frame type -> (the setting that enables it, the message it becomes), for payload-free events.
_EVENTS: dict[type, tuple[str, str]] = {
    UserStartedSpeakingFrame: ("user_speaking_enabled", "user-started-speaking"),
    UserStoppedSpeakingFrame: ("user_speaking_enabled", "user-stopped-speaking"),
    VADUserStartedSpeakingFrame: ("vad_user_speaking_enabled", "vad-user-started-speaking"),
    VADUserStoppedSpeakingFrame: ("vad_user_speaking_enabled", "vad-user-stopped-speaking"),
    UserMuteStartedFrame: ("user_mute_enabled", "user-mute-started"),
    UserMuteStoppedFrame: ("user_mute_enabled", "user-mute-stopped"),
    LLMFullResponseStartFrame: ("bot_llm_enabled", "bot-llm-started"),
    LLMFullResponseEndFrame: ("bot_llm_enabled", "bot-llm-stopped"),
    TTSStartedFrame: ("bot_tts_enabled", "bot-tts-started"),
    TTSStoppedFrame: ("bot_tts_enabled", "bot-tts-stopped"),
}

# Frame type -> observer method; subclasses of a listed type use the nearest listed base.
_DISPATCH: dict[type, str] = {
    **dict.fromkeys(_EVENTS, "_event"),
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
}
