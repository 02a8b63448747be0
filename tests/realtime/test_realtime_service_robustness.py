"""OpenAIRealtimeService against the emulator: a long call's connection blips, a rewritten context,
calls deferred past an interruption, settings changed all or nothing, and the SDK client it builds."""

from __future__ import annotations

from typing import Any

import pytest

pytest.importorskip("openai")

from test_realtime_service_support import running_service

from voxloop.context import FunctionSchema, LLMContext
from voxloop.frames import (
    ErrorFrame,
    FunctionCallInProgressFrame,
    InterruptionFrame,
    LLMContextFrame,
    LLMFullResponseEndFrame,
    LLMMessagesUpdateFrame,
    LLMUpdateSettingsFrame,
    UserStartedSpeakingFrame,
    UserStoppedSpeakingFrame,
)
from voxloop.services import FunctionCallParams
from voxloop.services.openai import PLACEHOLDER_API_KEY, OpenAIRealtimeService, RealtimeSettings, ServerVAD
from voxloop.testing import PipelineHarness
from voxloop.testing.realtime_emulator import EmulatedConnection, RealtimeEmulator

pytestmark = [pytest.mark.timeout(60), pytest.mark.usefixtures("no_leaked_tasks")]

WEATHER = FunctionSchema("get_weather", "The weather in a city.", {"city": {"type": "string"}}, ["city"])


def texts(conn: EmulatedConnection) -> list[tuple[str, str]]:
    """The server conversation's messages as (role, text or the transcript of the model's audio)."""
    parts = [(i["role"], i["content"][0]) for i in conn.items if i["type"] == "message"]
    return [(role, part.get("text") or part.get("transcript")) for role, part in parts]


def creates(conn: EmulatedConnection) -> int:
    return sum(1 for e in conn.client_events if e.type == "response.create")


async def test_blips_spread_over_a_long_call_are_each_retried_in_full() -> None:
    """More lost connections than ``reconnect_attempts`` over a call, each followed by a working
    session, never end it: only failures in a row count."""
    context = LLMContext([{"role": "system", "content": "Stay."}])
    async with (
        RealtimeEmulator() as emu,
        running_service(emu, context=context, reconnect_attempts=3) as (service, h),
    ):
        for blip in range(4):
            emu.drop_connection()
            conn = await emu.wait_for_connection(blip + 2)
            # The service saw session.created (its session.update was answered) before the next blip.
            await emu.wait_until(lambda c=conn: any(e["type"] == "session.updated" for e in c.server_events))
        emu.add_reply("Still here.")
        context.add_message({"role": "user", "content": "Are you there?"})
        await h.push(LLMContextFrame(context))
        await h.down_recorder.wait_for(LLMFullResponseEndFrame)
        assert not [f for f in h.up if isinstance(f, ErrorFrame) and f.fatal]
        assert len(emu.connections) == 5 and service.connected
    emu.assert_valid()


async def test_a_replaced_context_restarts_the_server_conversation_instead_of_appending() -> None:
    """``LLMMessagesUpdateFrame`` copies every message: the server gets the new context once, on a fresh
    conversation, and answers the question it ends with exactly once."""
    history = [
        {"role": "system", "content": "Remember."},
        {"role": "user", "content": "My name is Ada."},
        {"role": "assistant", "content": "Hello Ada."},
    ]
    context = LLMContext([dict(m) for m in history])
    async with (
        RealtimeEmulator() as emu,
        running_service(emu, context=context, aggregators=True) as (_, h),
    ):
        first = emu.connections[0]
        await emu.wait_until(lambda: len(first.items) >= 2, "history items")
        emu.add_reply("Your name is Ada.")
        question = {"role": "user", "content": "What is my name?"}
        await h.push(LLMMessagesUpdateFrame(messages=[*history, question], run_llm=True))
        second = await emu.wait_for_connection(2)
        await h.down_recorder.wait_for(LLMFullResponseEndFrame)
        assert texts(first) == [("user", "My name is Ada."), ("assistant", "Hello Ada.")]  # nothing appended
        assert creates(first) == 0
        assert first.closed.is_set()
        assert texts(second) == [
            ("user", "My name is Ada."),
            ("assistant", "Hello Ada."),
            ("user", "What is my name?"),
            ("assistant", "Your name is Ada."),
        ]
        assert creates(second) == 1
        assert context.messages[-1] == {"role": "assistant", "content": "Your name is Ada."}
    emu.assert_valid()


async def test_a_summarized_context_is_replayed_and_asks_for_nothing() -> None:
    """A summarizer keeps the recent messages (the same dicts) and drops the old ones: the server's
    conversation becomes the summary, with no reply asked for (the context ends with the bot's words)."""
    context = LLMContext(
        [
            {"role": "system", "content": "Remember."},
            {"role": "user", "content": "My name is Ada."},
            {"role": "assistant", "content": "Hello Ada."},
            {"role": "user", "content": "I live in Paris."},
            {"role": "assistant", "content": "Paris is lovely."},
        ]
    )
    async with RealtimeEmulator() as emu, running_service(emu, context=context) as (service, h):
        first = emu.connections[0]
        await emu.wait_until(lambda: len(first.items) >= 4, "history items")
        summary = {"role": "system", "content": "Summary: the user is Ada."}
        context.transform_messages(lambda messages: [messages[0], summary, *messages[-2:]])
        await h.push(LLMContextFrame(context))
        second = await emu.wait_for_connection(2)
        await service.wait_until_ready(10)
        # A barrier: a later client event on the new connection; a response asked for would precede it.
        await h.push(LLMUpdateSettingsFrame(settings={"voice": "cedar"}))
        await emu.wait_until(lambda: second.session["audio"]["output"]["voice"] == "cedar", "voice")
        assert texts(second) == [
            ("system", "Summary: the user is Ada."),
            ("user", "I live in Paris."),
            ("assistant", "Paris is lovely."),
        ]
        assert len(first.items) == 4 and creates(first) == 0
        assert creates(second) == 0
    emu.assert_valid()


async def test_calls_deferred_to_the_turn_end_are_cancelled_by_an_interruption() -> None:
    """A call the model made while the user's turn was still being written, then a barge-in: the server
    gets a CANCELLED output for it, and it never runs at the turn's end."""
    ran: list[dict[str, Any]] = []

    async def weather(params: FunctionCallParams) -> None:
        ran.append(params.arguments)
        await params.result_callback({"sky": "sunny"})

    context = LLMContext([{"role": "system", "content": "Use tools."}], tools=[WEATHER])
    async with RealtimeEmulator() as emu, running_service(emu, context=context) as (service, h):
        service.register_function("get_weather", weather)
        emu.add_function_call("get_weather", {"city": "Paris"}, call_id="call_paris")
        await h.push(UserStartedSpeakingFrame())
        await h.down_recorder.wait_for(UserStartedSpeakingFrame)
        context.add_message({"role": "user", "content": "Weather in Paris?"})
        await h.push(LLMContextFrame(context))
        await emu.wait_for_server_event("response.done")
        # A barrier: events are handled in order, so once this error is seen the call was deferred.
        await emu.inject_error("barrier", type="server_error")
        await h.up_recorder.wait_for(ErrorFrame)
        await h.push(InterruptionFrame())
        output = await emu.wait_for_client_event("conversation.item.create", count=2)
        assert output.data is not None
        assert output.data["item"] == {
            "type": "function_call_output",
            "call_id": "call_paris",
            "output": "CANCELLED",
        }
        # The turn ends; a second turn's start is a barrier behind it.
        await h.push(UserStoppedSpeakingFrame(), UserStartedSpeakingFrame())
        await h.down_recorder.wait_for(UserStartedSpeakingFrame, count=2)
        assert not ran
        assert not h.down_recorder.of_type(FunctionCallInProgressFrame)
        assert len(emu.client_events_of("conversation.item.create")) == 2
    emu.assert_valid()


def test_settings_update_is_all_or_nothing() -> None:
    settings = RealtimeSettings()
    bad_changes: list[dict[str, Any]] = [
        {"voice": "cedar", "modality": "video"},
        {"voice": "cedar", "turn_detection": {"type": "server_vad", "silence_ms": 300}},
        {"voice": "cedar", "input_transcription": {"modle": "whisper-1"}},
        {"voice": "cedar", "max_output_tokens": -5},
        {"voice": "cedar", "vioce": "ash"},
        {"instructions": "New.", "voice": 7},
    ]
    for changes in bad_changes:
        with pytest.raises(ValueError):
            settings.update(changes)
        assert settings == RealtimeSettings(), changes  # nothing changed
    changed = settings.update(
        {"voice": "cedar", "output_modalities": ["text"], "turn_detection": {"silence_duration_ms": 300}}
    )
    assert changed == {"voice", "modality", "turn_detection"}
    assert settings.modality == "text" and settings.turn_detection == ServerVAD(silence_duration_ms=300)


async def test_an_invalid_settings_frame_changes_nothing_in_the_session() -> None:
    async with RealtimeEmulator() as emu, running_service(emu, context=LLMContext()) as (service, h):
        await h.push(LLMUpdateSettingsFrame(settings={"voice": "cedar", "modality": "video"}))
        error = await h.up_recorder.wait_for(ErrorFrame)
        assert "modality" in error.error and not error.fatal
        assert service.realtime_settings.voice == "marin"
        await h.push(LLMUpdateSettingsFrame(settings={"instructions": "Later."}))
        update = await emu.wait_for_client_event("session.update", count=2)
        assert update.data is not None
        assert update.data["session"]["instructions"] == "Later."
        assert update.data["session"]["audio"]["output"]["voice"] == "marin"
    emu.assert_valid()


async def test_the_sync_update_settings_hook_refuses_instead_of_changing_settings_silently() -> None:
    """A change must reach the server; the sync LLMService hook cannot send it, so it says so."""
    service = OpenAIRealtimeService(api_key="k", base_url="http://127.0.0.1:9/v1")
    with pytest.raises(TypeError, match="apply_settings"):
        service.update_settings({"voice": "cedar"})
    assert service.realtime_settings.voice == "marin"


async def test_missing_key_error_is_the_shared_clients(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    monkeypatch.delenv("OPENAI_BASE_URL", raising=False)
    service = OpenAIRealtimeService()
    async with PipelineHarness(service) as h:
        error = await h.up_recorder.wait_for(ErrorFrame)
    assert error.fatal and "needs an API key" in error.error
    assert "OPENAI_API_KEY" in error.error and "OPENAI_BASE_URL" in error.error


async def test_a_base_url_without_a_key_gets_the_shared_placeholder_key(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    async with RealtimeEmulator(api_key=None) as emu:
        service = OpenAIRealtimeService(base_url=emu.base_url)
        async with PipelineHarness(service):
            await service.wait_until_ready(10)
        headers = {k.lower(): v for k, v in emu.connections[0].headers.items()}
        assert headers["authorization"] == f"Bearer {PLACEHOLDER_API_KEY}"
    emu.assert_valid()
