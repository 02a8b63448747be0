"""The Realtime core driven with plain calls: server events (validated against the SDK's
``openai.types.realtime`` models) and pipeline inputs in, the actions it asks for out. No connection,
no event loop."""

from __future__ import annotations

import base64
from typing import Any, get_args

import pytest

pytest.importorskip("openai")

from openai.types.realtime import RealtimeServerEvent
from pydantic import TypeAdapter

from voxloop.context import LLMContext
from voxloop.frames import (
    LLMFullResponseEndFrame,
    LLMFullResponseStartFrame,
    TranscriptionFinishedFrame,
    TTSAudioRawFrame,
    TTSStoppedFrame,
    TTSTextFrame,
    VADUserStartedSpeakingFrame,
)
from voxloop.pipeline import UPSTREAM
from voxloop.services.openai import RealtimeSettings
from voxloop.services.openai._realtime_actions import (
    Action,
    AudioLeaving,
    AuthRefused,
    BroadcastInterruption,
    Connected,
    InterruptCalls,
    ItemEvent,
    ItemRetrieved,
    Push,
    Reconnect,
    ReportError,
    Send,
    StartCalls,
)
from voxloop.services.openai._realtime_core import CANCELLED, RealtimeCore, check_video_frame_detail
from voxloop.services.openai._realtime_events import handled_event_types
from voxloop.testing.realtime_emulator import default_session

_EVENTS: TypeAdapter[RealtimeServerEvent] = TypeAdapter(RealtimeServerEvent)
_MS = 1_000_000
_BYTES_PER_MS = 48  # PCM16 at 24 kHz


def event(event_type: str, **fields: Any) -> RealtimeServerEvent:
    """A server event, validated by the SDK's own schema."""
    return _EVENTS.validate_python({"type": event_type, "event_id": "event_test", **fields})


def sent(actions: list[Action]) -> list[dict[str, Any]]:
    return [action.event for action in actions if isinstance(action, Send)]


def sent_types(actions: list[Action]) -> list[str]:
    return [e["type"] for e in sent(actions)]


def pushed(actions: list[Action]) -> list[Any]:
    return [action.frame for action in actions if isinstance(action, Push)]


def audio_delta(response_id: str, ms: int, item_id: str = "item_bot") -> RealtimeServerEvent:
    pcm = b"\x01\x00" * (ms * _BYTES_PER_MS // 2)
    return event(
        "response.output_audio.delta",
        response_id=response_id,
        item_id=item_id,
        output_index=0,
        content_index=0,
        delta=base64.b64encode(pcm).decode("ascii"),
    )


def feed(core: RealtimeCore, server_event: RealtimeServerEvent, now_ns: int) -> list[Action]:
    """A server event in, as the shell does it: the bot's audio leaves at ``now_ns``."""
    actions = core.server_event(server_event, now_ns)
    for action in actions:
        if isinstance(action, AudioLeaving):
            core.audio_leaving(action, now_ns)
    return actions


def ready_core(context: LLMContext | None = None, settings: RealtimeSettings | None = None) -> RealtimeCore:
    core = RealtimeCore(settings or RealtimeSettings(), name="realtime", context=context)
    core.server_event(event("session.created", session=default_session("gpt-realtime")), 0)
    return core


def test_the_table_routes_only_event_types_the_sdk_defines() -> None:
    sdk_types = {
        literal
        for member in get_args(get_args(RealtimeServerEvent)[0])
        for literal in get_args(member.model_fields["type"].annotation)
    }
    assert handled_event_types() <= sdk_types
    assert {
        "session.created",
        "response.output_audio.delta",
        "response.done",
        "error",
    } <= handled_event_types()


def test_a_context_before_the_session_is_replayed_and_answered_once_it_is_set_up() -> None:
    context = LLMContext([{"role": "system", "content": "Be brief."}])
    core = RealtimeCore(RealtimeSettings(), name="realtime", context=context)
    context.add_message({"role": "user", "content": "Hi there"})
    assert core.context_changed(context, downstream=True) == []  # not connected: nothing to send
    actions = core.server_event(event("session.created", session=default_session("gpt-realtime")), 0)
    assert sent_types(actions) == ["session.update", "conversation.item.create", "response.create"]
    assert sent(actions)[0]["session"]["instructions"] == "Be brief."
    assert sent(actions)[1]["item"]["content"] == [{"type": "input_text", "text": "Hi there"}]
    assert [a for a in actions if isinstance(a, Connected)] == [Connected(first=True)]
    assert core.ready


def test_requests_coalesce_until_the_active_response_is_done() -> None:
    context = LLMContext()
    core = ready_core(context)
    context.add_message({"role": "user", "content": "One"})
    assert sent_types(core.context_changed(context, downstream=True)) == [
        "conversation.item.create",
        "response.create",
    ]
    context.add_message({"role": "user", "content": "Two"})
    assert sent_types(core.context_changed(context, downstream=True)) == ["conversation.item.create"]
    created = core.server_event(
        event("response.created", response={"id": "resp_1", "status": "in_progress"}), 0
    )
    assert isinstance(pushed(created)[0], LLMFullResponseStartFrame)
    done = core.server_event(event("response.done", response={"id": "resp_1", "status": "completed"}), 0)
    assert sent_types(done) == ["response.create"]  # the second request, now
    assert any(isinstance(f, LLMFullResponseEndFrame) for f in pushed(done))


def test_an_interruption_cancels_and_truncates_at_what_was_played() -> None:
    core = ready_core(LLMContext())
    core.server_event(event("response.created", response={"id": "resp_1", "status": "in_progress"}), 0)
    frames = pushed(feed(core, audio_delta("resp_1", 1000), 0))
    assert sum(len(f.audio) for f in frames if isinstance(f, TTSAudioRawFrame)) == 1000 * _BYTES_PER_MS
    actions = core.interrupt(300 * _MS, cancel=True)
    assert isinstance(actions[0], InterruptCalls)
    cancel, truncate = sent(actions)
    assert cancel["type"] == "response.cancel"
    assert truncate["type"] == "conversation.item.truncate"
    assert (truncate["item_id"], truncate["audio_end_ms"]) == ("item_bot", 300)
    assert [type(f) for f in pushed(actions)] == [TTSStoppedFrame, LLMFullResponseEndFrame]
    assert feed(core, audio_delta("resp_1", 100), 310 * _MS) == []  # never heard: dropped
    assert sent(core.interrupt(400 * _MS, cancel=True)) == []  # nothing left to stop


def test_playback_is_counted_from_when_the_audio_leaves_not_when_the_event_arrived() -> None:
    core = ready_core(LLMContext())
    core.server_event(event("response.created", response={"id": "resp_1", "status": "in_progress"}), 0)
    actions = core.server_event(audio_delta("resp_1", 1000), 0)
    leaving = [a for a in actions if isinstance(a, AudioLeaving)]
    assert leaving == [AudioLeaving("item_bot", 0, 1000 * _BYTES_PER_MS)]
    first_audio = next(
        i for i, a in enumerate(actions) if isinstance(a, Push) and isinstance(a.frame, TTSAudioRawFrame)
    )
    assert actions.index(leaving[0]) < first_audio  # stamped after the frames before the audio
    core.audio_leaving(leaving[0], 50 * _MS)  # the frames before it took 50 ms to push
    truncate = sent(core.interrupt(300 * _MS, cancel=True))[-1]
    assert truncate["audio_end_ms"] == 250


def test_the_server_hearing_a_barge_in_stops_the_bot_without_cancelling_twice() -> None:
    core = ready_core(LLMContext())
    core.server_event(event("response.created", response={"id": "resp_1", "status": "in_progress"}), 0)
    feed(core, audio_delta("resp_1", 1000), 0)
    started = event("input_audio_buffer.speech_started", audio_start_ms=0, item_id="item_user")
    actions = core.server_event(started, 200 * _MS)
    assert sent_types(actions) == ["conversation.item.truncate"]  # the server cancels its response itself
    assert any(isinstance(a, BroadcastInterruption) for a in actions)
    last = actions[-1]
    assert isinstance(last, Push) and isinstance(last.frame, VADUserStartedSpeakingFrame)
    assert last.direction is UPSTREAM


def test_transcript_text_is_released_where_its_audio_plays() -> None:
    core = ready_core(LLMContext())
    core.server_event(event("response.created", response={"id": "resp_1", "status": "in_progress"}), 0)
    core.server_event(
        event(
            "response.output_audio_transcript.delta",
            response_id="resp_1",
            item_id="item_bot",
            output_index=0,
            content_index=0,
            delta="Hello.",
        ),
        0,
    )
    first = pushed(feed(core, audio_delta("resp_1", 60), 0))
    assert not any(isinstance(f, TTSTextFrame) for f in first)  # 60 ms of audio: before the 100 ms lead
    second = [type(f) for f in pushed(feed(core, audio_delta("resp_1", 60), 0))]
    assert second.index(TTSTextFrame) == 1  # after the 40 ms that reach the lead, before the rest
    assert second.count(TTSAudioRawFrame) == 2


def test_calls_wait_for_the_users_turn_and_an_interruption_answers_them_cancelled() -> None:
    core = ready_core(LLMContext())
    core.user_turn_started()
    core.server_event(event("response.created", response={"id": "resp_1", "status": "in_progress"}), 0)
    core.server_event(
        event(
            "response.function_call_arguments.done",
            response_id="resp_1",
            item_id="item_call",
            output_index=0,
            call_id="call_1",
            name="get_time",
            arguments="{}",
        ),
        0,
    )
    done = core.server_event(event("response.done", response={"id": "resp_1", "status": "completed"}), 0)
    assert not any(isinstance(a, StartCalls) for a in done)
    assert [a for a in core.user_turn_stopped() if isinstance(a, StartCalls)] == [
        StartCalls([("call_1", "get_time", "{}")])
    ]
    core.user_turn_started()
    core.server_event(event("response.created", response={"id": "resp_2", "status": "in_progress"}), 0)
    core.server_event(
        event(
            "response.function_call_arguments.done",
            response_id="resp_2",
            item_id="item_call2",
            output_index=0,
            call_id="call_2",
            name="get_time",
            arguments="{}",
        ),
        0,
    )
    core.server_event(event("response.done", response={"id": "resp_2", "status": "completed"}), 0)
    outputs = sent(core.interrupt(0, cancel=True))
    assert outputs == [
        {
            "type": "conversation.item.create",
            "event_id": outputs[0]["event_id"],
            "item": {"type": "function_call_output", "call_id": "call_2", "output": CANCELLED},
        }
    ]
    assert not any(isinstance(a, StartCalls) for a in core.user_turn_stopped())


def test_server_errors_become_actions() -> None:
    core = ready_core(LLMContext())
    busy = {
        "type": "invalid_request_error",
        "code": "conversation_already_has_active_response",
        "message": "busy",
    }
    assert core.server_event(event("error", error=busy), 0) == []  # retried at the next response.done
    refused = {"type": "invalid_request_error", "code": "invalid_api_key", "message": "bad key"}
    assert core.server_event(event("error", error=refused), 0) == [
        AuthRefused("the OpenAI API key was refused: bad key")
    ]
    other = {"type": "server_error", "code": "boom", "message": "it broke"}
    (report,) = core.server_event(event("error", error=other), 0)
    assert isinstance(report, ReportError) and report.message == "it broke"
    benign = {"type": "invalid_request_error", "code": "response_cancel_not_active", "message": "none"}
    assert core.server_event(event("error", error=benign), 0) == []


def test_a_new_model_reconnects_and_other_settings_update_the_session() -> None:
    settings = RealtimeSettings()
    core = ready_core(LLMContext(), settings)
    changed = settings.update({"voice": "cedar"})
    (update,) = sent(core.settings_changed(changed))
    assert update["session"]["audio"]["output"]["voice"] == "cedar"
    changed = settings.update({"model": "gpt-realtime-mini"})
    assert core.settings_changed(changed) == [Reconnect()]
    assert not core.ready


def test_audio_goes_out_in_batches_only_once_the_session_is_set_up() -> None:
    core = RealtimeCore(RealtimeSettings(), name="realtime")
    chunk = b"\x00\x01" * 320  # 20 ms at 16 kHz
    assert core.user_audio(chunk, 16000, 1) == []
    core.server_event(event("session.created", session=default_session("gpt-realtime")), 0)
    batches = [sent(core.user_audio(chunk, 16000, 1)) for _ in range(20)]  # 400 ms
    assert batches[:4] == [[], [], [], []]  # under 100 ms: held
    appends = [e for batch in batches for e in batch]
    assert [e["type"] for e in appends] == ["input_audio_buffer.append"] * 3
    assert all(len(base64.b64decode(e["audio"])) >= 100 * _BYTES_PER_MS for e in appends)


def test_events_without_a_route_change_nothing() -> None:
    core = ready_core(LLMContext())
    limits = event("rate_limits.updated", rate_limits=[])
    assert core.server_event(limits, 0) == []


def test_paused_audio_and_video_are_not_sent_until_resumed() -> None:
    core = ready_core(LLMContext())
    chunk = b"\x00\x01" * 3200  # 200 ms at 16 kHz: one batch
    core.audio_paused = core.video_paused = True
    assert core.user_audio(chunk, 16000, 1) == []
    assert not core.image_due(0)
    core.audio_paused = core.video_paused = False
    assert sent_types(core.user_audio(chunk, 16000, 1)) == ["input_audio_buffer.append"]
    assert core.image_due(0)


def test_the_video_frame_detail_is_checked() -> None:
    assert RealtimeCore(RealtimeSettings(), name="r", video_frame_detail="high").video_frame_detail == "high"
    with pytest.raises(ValueError, match="auto, low, high"):
        RealtimeCore(RealtimeSettings(), name="r", video_frame_detail="ultra")
    with pytest.raises(ValueError):
        check_video_frame_detail("")


def test_an_item_is_retrieved_once_however_many_ask_and_a_refusal_is_an_answer() -> None:
    core = ready_core(LLMContext())
    assert core.retrieve_item("item_1")[0] == Send(
        {"type": "conversation.item.retrieve", "event_id": "rci_item_1", "item_id": "item_1"}, "retrieve"
    )
    assert core.retrieve_item("item_1") == []  # already on its way
    item = {"id": "item_1", "type": "message", "role": "user", "content": []}
    (answer,) = core.server_event(event("conversation.item.retrieved", item=item), 0)
    assert isinstance(answer, ItemRetrieved) and answer.item_id == "item_1" and answer.error is None
    assert answer.item.id == "item_1"
    # Nobody asked for it now: nothing to answer.
    assert core.server_event(event("conversation.item.retrieved", item=item), 0) == []
    core.retrieve_item("nope")
    refusal = {
        "type": "invalid_request_error",
        "code": "item_retrieve_invalid_item_id",
        "message": "no such item",
        "event_id": "rci_nope",
    }
    assert core.server_event(event("error", error=refusal), 0) == [
        ItemRetrieved("nope", error="no such item")
    ]
    core.retrieve_item("item_2")
    gone = core.connection_gone(resume=True)
    assert ItemRetrieved("item_2", error="the connection was lost") in gone
    assert core.retrieve_item("item_3") == [ItemRetrieved("item_3", error="not connected")]


def test_conversation_item_events_reach_the_app() -> None:
    core = ready_core(LLMContext())
    item = {"id": "item_9", "type": "message", "role": "assistant", "content": []}
    (added,) = core.server_event(event("conversation.item.added", item=item), 0)
    (done,) = core.server_event(event("conversation.item.done", item=item), 0)
    assert isinstance(added, ItemEvent) and isinstance(done, ItemEvent)
    assert (added.event, added.item_id) == ("on_conversation_item_created", "item_9")
    assert (done.event, done.item_id) == ("on_conversation_item_updated", "item_9")


def test_an_apps_client_event_is_sent_as_it_is() -> None:
    core = ready_core(LLMContext())
    (send,) = core.client_event({"type": "input_audio_buffer.clear"})
    assert send.event["type"] == "input_audio_buffer.clear" and send.event["event_id"].startswith("vx_")
    (own,) = core.client_event({"type": "response.cancel", "event_id": "mine"})
    assert own.event == {"type": "response.cancel", "event_id": "mine"}
    with pytest.raises(ValueError, match="type"):
        core.client_event({"item_id": "x"})


def test_new_tools_reach_the_server_at_once() -> None:
    context = LLMContext()
    core = ready_core(context)
    weather = {"type": "function", "function": {"name": "get_weather", "parameters": {}}}
    (update,) = sent(core.tools_set([weather]))
    assert update["type"] == "session.update"
    assert [t["name"] for t in update["session"]["tools"]] == ["get_weather"]
    assert context.tools.names() == ["get_weather"]
    assert core.tools_set(context.tools) == []  # the aggregator set them already: no change, nothing sent


def test_speed_and_tool_choice_reach_the_session_and_the_contexts_choice_only_as_a_fallback() -> None:
    context = LLMContext()
    context.set_tool_choice("required")
    core = ready_core(context, RealtimeSettings(speed=1.25))
    (update,) = sent(core.server_event(event("session.created", session=default_session("gpt-realtime")), 0))
    assert update["session"]["audio"]["output"]["speed"] == 1.25
    assert update["session"]["tool_choice"] == "required"  # the context's, as no setting says otherwise
    settings = RealtimeSettings(tool_choice="none")
    core = ready_core(context, settings)
    (update,) = sent(core.server_event(event("session.created", session=default_session("gpt-realtime")), 0))
    assert update["session"]["tool_choice"] == "none"
    assert "speed" not in update["session"]["audio"]["output"]


def test_a_failed_input_transcription_still_ends_the_users_transcription() -> None:
    core = ready_core(LLMContext())
    core.server_event(
        event(
            "conversation.item.input_audio_transcription.delta",
            item_id="item_u",
            content_index=0,
            delta="hel",
        ),
        0,
    )
    failed = event(
        "conversation.item.input_audio_transcription.failed",
        item_id="item_u",
        content_index=0,
        error={"type": "transcription_error", "code": "audio_unintelligible", "message": "no words"},
    )
    frames = pushed(core.server_event(failed, 0))
    assert [(type(f), f.text) for f in frames] == [(TranscriptionFinishedFrame, "")]
    assert len(core.transcripts) == 0  # its partial text is gone
