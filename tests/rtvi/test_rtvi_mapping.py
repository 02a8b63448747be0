"""The frame -> RTVI message mapping on its own: pure functions, every message checked against the models."""

from __future__ import annotations

from typing import Any

import pytest

from voxloop.frames import (
    AggregatedTextFrame,
    AggregatedTextProgressFrame,
    AggregationType,
    BotStartedSpeakingFrame,
    BotStoppedSpeakingFrame,
    FunctionCallCancelFrame,
    FunctionCallFromLLM,
    FunctionCallInProgressFrame,
    FunctionCallResultFrame,
    FunctionCallsStartedFrame,
    InterimTranscriptionFrame,
    InterruptionFrame,
    LLMContextFrame,
    LLMFullResponseStartFrame,
    LLMTextFrame,
    LLMTokenUsage,
    LLMUsageMetricsData,
    MetricsFrame,
    ProcessingMetricsData,
    STTUsageMetricsData,
    TextFrame,
    TranscriptionFrame,
    TTFBMetricsData,
    TTSTextFrame,
    TTSUsageMetricsData,
    UserStartedSpeakingFrame,
    VADUserStartedSpeakingFrame,
)
from voxloop.rtvi import RTVIServerMessageFrame, validate_server_message
from voxloop.rtvi import _mapping as mapping
from voxloop.rtvi._mapping import FunctionCallReportLevel, RTVIObserverParams


def valid(message: dict[str, Any] | None) -> dict[str, Any]:
    assert message is not None
    validate_server_message(message)
    assert message["label"] == "rtvi-ai"
    return message


def test_payload_free_events_follow_their_setting() -> None:
    params = RTVIObserverParams()
    assert valid(mapping.event_message(UserStartedSpeakingFrame(), params))["type"] == "user-started-speaking"
    assert valid(mapping.event_message(BotStartedSpeakingFrame(), params)) == {
        "label": "rtvi-ai",
        "type": "bot-started-speaking",
    }
    assert valid(mapping.event_message(InterruptionFrame(), params))["type"] == "bot-interrupted"
    assert mapping.event_message(VADUserStartedSpeakingFrame(), params) is None  # off by default
    params.vad_user_speaking_enabled = True
    assert valid(mapping.event_message(VADUserStartedSpeakingFrame(), params))["type"] == (
        "vad-user-started-speaking"
    )
    off = RTVIObserverParams(bot_speaking_enabled=False, bot_llm_enabled=False)
    assert mapping.event_message(BotStoppedSpeakingFrame(), off) is None
    assert mapping.event_message(LLMFullResponseStartFrame(), off) is None
    assert mapping.event_message(TextFrame("not an event"), params) is None


def test_a_subclass_maps_like_its_base() -> None:
    class MyStart(UserStartedSpeakingFrame):
        pass

    assert valid(mapping.event_message(MyStart(), RTVIObserverParams()))["type"] == "user-started-speaking"


def test_transcriptions_final_and_interim() -> None:
    params = RTVIObserverParams()
    final = valid(mapping.transcription_message(TranscriptionFrame("hi", user_id="u", timestamp="t"), params))
    assert final["data"] == {"text": "hi", "user_id": "u", "timestamp": "t", "final": True}
    interim = valid(mapping.transcription_message(InterimTranscriptionFrame("h"), params))
    assert interim["data"]["final"] is False
    off = RTVIObserverParams(user_transcription_enabled=False)
    assert mapping.transcription_message(TranscriptionFrame("hi"), off) is None


@pytest.mark.parametrize(
    ("context", "expected"),
    [
        ({"messages": [{"role": "user", "content": "what time is it"}]}, "what time is it"),
        (
            {"messages": [{"role": "user", "content": [{"type": "text", "text": "a"}, {"type": "image"}]}]},
            "a",
        ),
        ({"messages": [{"role": "assistant", "content": "no"}]}, None),
        ({"messages": []}, None),
        ({"messages": [{"role": "user", "content": ""}]}, None),
    ],
)
def test_user_llm_text_is_the_last_user_message(context: dict[str, Any], expected: str | None) -> None:
    message = mapping.user_llm_text_message(LLMContextFrame(context=context), RTVIObserverParams())
    if expected is None:
        assert message is None
    else:
        assert valid(message)["data"] == {"text": expected}


def test_user_llm_text_reads_a_context_object() -> None:
    class Context:
        messages = [{"role": "user", "content": "from an object"}]

    message = mapping.user_llm_text_message(LLMContextFrame(context=Context()), RTVIObserverParams())
    assert valid(message) == {"label": "rtvi-ai", "type": "user-llm-text", "data": {"text": "from an object"}}


def test_llm_text_and_audio_level() -> None:
    assert valid(mapping.llm_text_message(LLMTextFrame(" hi"), RTVIObserverParams()))["data"] == {
        "text": " hi"
    }
    assert mapping.llm_text_message(LLMTextFrame("x"), RTVIObserverParams(bot_llm_enabled=False)) is None
    level = valid(mapping.audio_level_message("user-audio-level", 0.123456))
    assert level["type"] == "user-audio-level" and level["data"] == {"value": 0.1235}


def test_tts_text_only_for_spoken_text() -> None:
    params = RTVIObserverParams()
    spoken = TTSTextFrame("Hello.")
    assert valid(mapping.bot_tts_text_message(spoken, "HELLO.", params))["data"] == {"text": "HELLO."}
    assert mapping.bot_tts_text_message(AggregatedTextFrame("Hello."), "Hello.", params) is None
    assert mapping.bot_tts_text_message(spoken, "x", RTVIObserverParams(bot_tts_enabled=False)) is None


def test_bot_output_for_current_clients() -> None:
    spoken = TTSTextFrame("Hello there.")
    data = valid(mapping.bot_output_message(spoken, "Hello there.", "sentence", 2))["data"]
    assert data == {
        "text": "Hello there.",
        "aggregated_by": "sentence",
        "segment_id": spoken.id,
        "will_be_spoken": True,
        "spoken_status": "completed",
        "spoken_progress": {"accumulated_text": "Hello there.", "remaining_text": ""},
    }
    announced = AggregatedTextFrame("Soon.")
    announced.will_be_spoken = True
    data = valid(mapping.bot_output_message(announced, "Soon.", "sentence", 2))["data"]
    assert data["spoken_status"] == "new"
    assert data["spoken_progress"] == {"accumulated_text": "", "remaining_text": "Soon."}
    silent = AggregatedTextFrame("Only shown.")
    assert (
        valid(mapping.bot_output_message(silent, "Only shown.", "sentence", 2))["data"]["will_be_spoken"]
        is False
    )
    word = TTSTextFrame("Hello", aggregated_by=AggregationType.WORD)
    assert mapping.bot_output_message(word, "Hello", "word", 2) is None  # words travel as progress


def test_bot_output_progress_uses_the_given_texts() -> None:
    frame = AggregatedTextProgressFrame(
        segment_id=7, text="there", accumulated_text="Hello there", remaining_text=" friend."
    )
    assert mapping.needs_progress_texts(frame, 2) and not mapping.needs_progress_texts(frame, 1)
    assert not mapping.needs_progress_texts(TTSTextFrame("x"), 2)
    message = mapping.bot_output_message(frame, "THERE", "word", 2, ("HELLO THERE", " FRIEND."))
    assert valid(message)["data"] == {
        "text": "THERE",
        "aggregated_by": "word",
        "segment_id": 7,
        "will_be_spoken": True,
        "spoken_status": "in-progress",
        "spoken_progress": {"accumulated_text": "HELLO THERE", "remaining_text": " FRIEND."},
    }
    done = AggregatedTextProgressFrame(
        segment_id=7, text="friend.", accumulated_text="all", remaining_text=""
    )
    assert valid(mapping.bot_output_message(done, "friend.", "word", 2, ("all", "")))["data"][
        "spoken_status"
    ] == ("completed")


def test_bot_output_for_1x_clients() -> None:
    assert valid(mapping.bot_output_message(TTSTextFrame("Hi."), "Hi.", "sentence", 1))["data"] == {
        "text": "Hi.",
        "aggregated_by": "sentence",
        "spoken": True,
    }
    unspoken = AggregatedTextFrame("Shown.")
    assert valid(mapping.bot_output_message(unspoken, "Shown.", "sentence", 1))["data"]["spoken"] is False
    progress = AggregatedTextProgressFrame(segment_id=1, text="a", accumulated_text="a", remaining_text="")
    assert mapping.bot_output_message(progress, "a", "word", 1) is None


def call_params(level: str) -> RTVIObserverParams:
    return RTVIObserverParams(function_call_report_level={"*": FunctionCallReportLevel(level)})


def test_function_call_messages_follow_the_report_level() -> None:
    started = FunctionCallsStartedFrame(function_calls=[FunctionCallFromLLM("get_time", "c1", {"tz": "UTC"})])
    progress = FunctionCallInProgressFrame(
        function_name="get_time", tool_call_id="c1", arguments={"tz": "UTC"}
    )
    result = FunctionCallResultFrame(
        function_name="get_time", tool_call_id="c1", arguments={}, result={"t": 1}
    )
    cancel = FunctionCallCancelFrame(function_name="get_time", tool_call_id="c1")

    none = call_params("none")
    assert [valid(m)["data"] for m in mapping.function_calls_started_messages(started, none)] == [{}]
    assert valid(mapping.function_call_in_progress_message(progress, none, 2))["data"] == {
        "tool_call_id": "c1"
    }
    assert valid(mapping.function_call_stopped_message(cancel, none))["data"] == {
        "tool_call_id": "c1",
        "cancelled": True,
    }

    full = call_params("full")
    assert valid(mapping.function_calls_started_messages(started, full)[0])["data"] == {
        "function_name": "get_time"
    }
    assert valid(mapping.function_call_in_progress_message(progress, full, 2))["data"] == {
        "tool_call_id": "c1",
        "function_name": "get_time",
        "arguments": {"tz": "UTC"},
    }
    assert valid(mapping.function_call_stopped_message(result, full))["data"] == {
        "tool_call_id": "c1",
        "cancelled": False,
        "function_name": "get_time",
        "result": {"t": 1},
    }
    name = call_params("name")
    assert "result" not in valid(mapping.function_call_stopped_message(result, name))["data"]

    disabled = call_params("disabled")
    assert mapping.function_calls_started_messages(started, disabled) == []
    assert mapping.function_call_in_progress_message(progress, disabled, 2) is None
    assert mapping.function_call_stopped_message(result, disabled) is None


def test_report_level_per_function_with_a_default() -> None:
    params = RTVIObserverParams(
        function_call_report_level={
            "secret": FunctionCallReportLevel.DISABLED,
            "*": FunctionCallReportLevel.FULL,
        }
    )
    assert mapping.report_level(params, "secret") is FunctionCallReportLevel.DISABLED
    assert mapping.report_level(params, "other") is FunctionCallReportLevel.FULL
    assert mapping.report_level(RTVIObserverParams(function_call_report_level={}), "x") is (
        FunctionCallReportLevel.NONE
    )


def test_0x_clients_get_the_legacy_call_message_whatever_the_level() -> None:
    progress = FunctionCallInProgressFrame(function_name="f", tool_call_id="c9", arguments={"a": 1})
    message = valid(mapping.function_call_in_progress_message(progress, call_params("disabled"), 0))
    assert message["type"] == "llm-function-call"
    assert message["data"] == {"function_name": "f", "tool_call_id": "c9", "args": {"a": 1}}


def test_metrics_grouped_by_kind() -> None:
    usage = LLMTokenUsage(prompt_tokens=3, completion_tokens=2, total_tokens=5)
    frame = MetricsFrame(
        data=[
            TTFBMetricsData(processor="llm", model="m", value=0.25),
            ProcessingMetricsData(processor="tts", value=0.5),
            LLMUsageMetricsData(processor="llm", model="m", value=usage),
            LLMUsageMetricsData(processor="llm", value=None),  # nothing to report
            TTSUsageMetricsData(processor="tts", value=12),
            STTUsageMetricsData(processor="stt", audio_seconds=1.5),
        ]
    )
    assert valid(mapping.metrics_message(frame, RTVIObserverParams()))["data"] == {
        "ttfb": [{"processor": "llm", "model": "m", "value": 0.25}],
        "processing": [{"processor": "tts", "value": 0.5}],
        "tokens": [
            {"processor": "llm", "model": "m", "prompt_tokens": 3, "completion_tokens": 2, "total_tokens": 5}
        ],
        "characters": [{"processor": "tts", "value": 12}],
        "stt_usage": [{"processor": "stt", "value": {"audio_seconds": 1.5}}],
    }
    assert mapping.metrics_message(MetricsFrame(data=[]), RTVIObserverParams()) is None
    assert mapping.metrics_message(frame, RTVIObserverParams(metrics_enabled=False)) is None


def test_server_message_and_system_log() -> None:
    assert valid(mapping.server_message_for(RTVIServerMessageFrame(data={"k": 1}))) == {
        "label": "rtvi-ai",
        "type": "server-message",
        "data": {"k": 1},
    }
    assert valid(mapping.system_log_message("line"))["data"] == {"text": "line"}


def test_the_mapping_keeps_no_state() -> None:
    """The same frame and settings give the same message, however often it is asked."""
    frame, params = TranscriptionFrame("same"), RTVIObserverParams()
    assert mapping.transcription_message(frame, params) == mapping.transcription_message(frame, params)
    assert params == RTVIObserverParams()  # the settings are read, never written
