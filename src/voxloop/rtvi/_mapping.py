"""Which RTVI message a frame becomes: pure functions, no state, no I/O.

Each function takes a frame (and the settings or the few facts it depends on) and returns the
server message to send, or None when the frame is not reported. The observer decides *when* a
frame is reported (once, from the right hop, held until its audio plays); this module decides
*what* the client is told.
"""

from __future__ import annotations

import warnings
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

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
    InterimTranscriptionFrame,
    InterruptionFrame,
    LLMContextFrame,
    LLMFullResponseEndFrame,
    LLMFullResponseStartFrame,
    LLMTextFrame,
    LLMUsageMetricsData,
    MetricsFrame,
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
from ..pipeline import FrameProcessor
from .frames import RTVIServerMessageFrame
from .messages import server_message

Message = dict[str, Any]
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
    #: Deprecated (errors are part of the protocol): False stops the processor sending ``error``.
    errors_enabled: bool | None = None

    def __post_init__(self) -> None:
        if self.errors_enabled is not None:
            warnings.warn(
                "RTVIObserverParams.errors_enabled is deprecated; clients expect error messages",
                DeprecationWarning,
                stacklevel=3,
            )


# Frame type -> (the setting that enables it, the message it becomes), for payload-free events.
EVENTS: dict[type[Frame], tuple[str, str]] = {
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
    BotStartedSpeakingFrame: ("bot_speaking_enabled", "bot-started-speaking"),
    BotStoppedSpeakingFrame: ("bot_speaking_enabled", "bot-stopped-speaking"),
    InterruptionFrame: ("bot_speaking_enabled", "bot-interrupted"),
}

_WORDISH = {AggregationType.WORD.value, AggregationType.TOKEN.value}


def event_message(frame: Frame, params: RTVIObserverParams) -> Message | None:
    """A payload-free event (speaking, mute, LLM and TTS start/stop, interruption), if enabled."""
    base = next((t for t in type(frame).__mro__ if t in EVENTS), None)  # subclasses map like their base
    if base is None:
        return None
    setting, type_ = EVENTS[base]
    return server_message(type_) if getattr(params, setting) else None


def transcription_message(
    frame: TranscriptionFrame | InterimTranscriptionFrame, params: RTVIObserverParams
) -> Message | None:
    """``user-transcription``, final or interim."""
    if not params.user_transcription_enabled:
        return None
    data = {
        "text": frame.text,
        "user_id": frame.user_id,
        "timestamp": frame.timestamp,
        "final": isinstance(frame, TranscriptionFrame),
    }
    return server_message("user-transcription", data)


def user_llm_text_message(frame: LLMContextFrame, params: RTVIObserverParams) -> Message | None:
    """``user-llm-text``: the user's words the LLM is about to answer (the context's last message)."""
    if not params.user_llm_enabled:
        return None
    context = frame.context
    messages = context.get("messages") if isinstance(context, dict) else getattr(context, "messages", None)
    if not messages:
        return None
    last = messages[-1]
    if not isinstance(last, dict) or last.get("role") != "user":
        return None
    content = last.get("content")
    if isinstance(content, list):
        content = " ".join(
            part.get("text", "") for part in content if isinstance(part, dict) and part.get("type") == "text"
        )
    if isinstance(content, str) and content:
        return server_message("user-llm-text", {"text": content})
    return None


def audio_level_message(type_: str, level: float) -> Message:
    """``user-audio-level`` or ``bot-audio-level`` for a level in 0..1."""
    return server_message(type_, {"value": round(level, 4)})


def llm_text_message(frame: LLMTextFrame, params: RTVIObserverParams) -> Message | None:
    """``bot-llm-text``: a piece of what the LLM writes."""
    return server_message("bot-llm-text", {"text": frame.text}) if params.bot_llm_enabled else None


def bot_transcription_message(text: str, params: RTVIObserverParams, generation: int) -> Message | None:
    """``bot-transcription`` (deprecated): a sentence of the LLM's text, for the clients before 2.0,
    whose ``onBotTranscript`` it feeds (current clients follow ``bot-output`` instead)."""
    if generation >= 2 or not params.bot_llm_enabled or not text:
        return None
    return server_message("bot-transcription", {"text": text})


def bot_tts_text_message(frame: Frame, text: str, params: RTVIObserverParams) -> Message | None:
    """``bot-tts-text`` for spoken text (a TTSTextFrame), ``text`` being its transformed text."""
    if isinstance(frame, TTSTextFrame) and params.bot_tts_enabled:
        return server_message("bot-tts-text", {"text": text})
    return None


def needs_progress_texts(frame: Frame, generation: int) -> bool:
    """Whether :func:`bot_output_message` reports a progress frame's accumulated and remaining text."""
    return isinstance(frame, AggregatedTextProgressFrame) and generation >= 2


def bot_output_message(
    frame: AggregatedTextFrame | AggregatedTextProgressFrame,
    text: str,
    kind: str,
    generation: int,
    progress: tuple[str, str] = ("", ""),
) -> Message | None:
    """``bot-output`` for bot text that has played (or will not be spoken).

    ``text`` is the frame's transformed text, ``kind`` its aggregation type, ``generation`` the
    client's protocol generation, and ``progress`` the transformed accumulated and remaining
    text of a progress frame (see :func:`needs_progress_texts`).
    """
    if generation < 2:  # 1.x clients: one message per piece, `spoken`
        if isinstance(frame, AggregatedTextProgressFrame):
            return None
        data = {"text": text, "aggregated_by": kind, "spoken": isinstance(frame, TTSTextFrame)}
        return server_message("bot-output", data)
    if isinstance(frame, AggregatedTextProgressFrame):
        accumulated, remaining = progress
        return server_message(
            "bot-output",
            {
                "text": text,
                "aggregated_by": kind,
                "segment_id": frame.segment_id,
                "will_be_spoken": True,
                "spoken_status": "completed" if not frame.remaining_text else "in-progress",
                "spoken_progress": {"accumulated_text": accumulated, "remaining_text": remaining},
            },
        )
    if kind in _WORDISH:
        return None  # current clients follow words through the progress messages
    out: Message = {"text": text, "aggregated_by": kind, "segment_id": frame.id}
    if isinstance(frame, TTSTextFrame):
        out["will_be_spoken"] = True
        out["spoken_status"] = "completed"
        out["spoken_progress"] = {"accumulated_text": text, "remaining_text": ""}
    elif frame.will_be_spoken:
        out["will_be_spoken"] = True
        out["spoken_status"] = "new"
        out["spoken_progress"] = {"accumulated_text": "", "remaining_text": text}
    else:
        out["will_be_spoken"] = False
    return server_message("bot-output", out)


def report_level(params: RTVIObserverParams, function_name: str) -> FunctionCallReportLevel:
    """How much is told about calls to ``function_name`` (its own level, else ``"*"``'s)."""
    levels = params.function_call_report_level
    level = levels.get(function_name, levels.get("*", FunctionCallReportLevel.NONE))
    return FunctionCallReportLevel(level)


def function_calls_started_messages(
    frame: FunctionCallsStartedFrame, params: RTVIObserverParams
) -> list[Message]:
    """One ``llm-function-call-started`` per call that is reported at all."""
    out = []
    for call in frame.function_calls:
        level = report_level(params, call.function_name)
        if level is FunctionCallReportLevel.DISABLED:
            continue
        data = {} if level is FunctionCallReportLevel.NONE else {"function_name": call.function_name}
        out.append(server_message("llm-function-call-started", data))
    return out


def function_call_in_progress_message(
    frame: FunctionCallInProgressFrame, params: RTVIObserverParams, generation: int
) -> Message | None:
    """``llm-function-call-in-progress`` (0.x clients: ``llm-function-call``, which runs their handler)."""
    if generation == 0:
        legacy = {"function_name": frame.function_name, "tool_call_id": frame.tool_call_id}
        return server_message("llm-function-call", {**legacy, "args": dict(frame.arguments)})
    level = report_level(params, frame.function_name)
    if level is FunctionCallReportLevel.DISABLED:
        return None
    data: Message = {"tool_call_id": frame.tool_call_id}
    if level in (FunctionCallReportLevel.NAME, FunctionCallReportLevel.FULL):
        data["function_name"] = frame.function_name
    if level is FunctionCallReportLevel.FULL:
        data["arguments"] = dict(frame.arguments)
    return server_message("llm-function-call-in-progress", data)


def function_call_stopped_message(
    frame: FunctionCallResultFrame | FunctionCallCancelFrame, params: RTVIObserverParams
) -> Message | None:
    """``llm-function-call-stopped``: a result or a cancel."""
    level = report_level(params, frame.function_name)
    if level is FunctionCallReportLevel.DISABLED:
        return None
    cancelled = isinstance(frame, FunctionCallCancelFrame)
    data: Message = {"tool_call_id": frame.tool_call_id, "cancelled": cancelled}
    if level in (FunctionCallReportLevel.NAME, FunctionCallReportLevel.FULL):
        data["function_name"] = frame.function_name
    full = level is FunctionCallReportLevel.FULL
    if full and isinstance(frame, FunctionCallResultFrame) and frame.result:
        data["result"] = frame.result
    return server_message("llm-function-call-stopped", data)


def metrics_message(frame: MetricsFrame, params: RTVIObserverParams) -> Message | None:
    """``metrics``, grouped by kind (ttfb, processing, tokens, characters, stt_usage)."""
    if not params.metrics_enabled:
        return None
    groups: dict[str, list[Message]] = {}
    for item in frame.data:
        base: Message = {"processor": item.processor}
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
    return server_message("metrics", groups) if groups else None


def server_message_for(frame: RTVIServerMessageFrame) -> Message:
    """``server-message``: what the bot sends the client of its own accord."""
    return server_message("server-message", frame.data)


def system_log_message(text: str) -> Message:
    """``system-log``: one forwarded log line."""
    return server_message("system-log", {"text": text})


__all__ = [
    "EVENTS",
    "FunctionCallReportLevel",
    "Message",
    "RTVIObserverParams",
    "TextTransform",
    "audio_level_message",
    "bot_output_message",
    "bot_transcription_message",
    "bot_tts_text_message",
    "event_message",
    "function_call_in_progress_message",
    "function_call_stopped_message",
    "function_calls_started_messages",
    "llm_text_message",
    "metrics_message",
    "needs_progress_texts",
    "report_level",
    "server_message_for",
    "system_log_message",
    "transcription_message",
    "user_llm_text_message",
]
