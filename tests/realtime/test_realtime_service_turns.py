"""OpenAIRealtimeService against the emulator: barge-in and truncation, function calls, errors, reconnects."""

from __future__ import annotations

import json
from typing import Any

import pytest

pytest.importorskip("openai")

from test_realtime_service_support import audio_frames, loud_16k, running_service, speech_16k, spoken_text

from voxloop.context import FunctionSchema, LLMContext
from voxloop.frames import (
    ErrorCategory,
    ErrorFrame,
    FunctionCallInProgressFrame,
    FunctionCallResultFrame,
    InterruptionFrame,
    LLMContextFrame,
    LLMFullResponseEndFrame,
    TTSAudioRawFrame,
    TTSStoppedFrame,
)
from voxloop.services import FunctionCallParams
from voxloop.services.openai import OpenAIRealtimeService
from voxloop.testing import FakeClock, PipelineHarness
from voxloop.testing.realtime_emulator import RealtimeEmulator

pytestmark = [pytest.mark.timeout(60), pytest.mark.usefixtures("no_leaked_tasks")]

LONG = (
    "Here is a long answer about the weather in many places. In Paris it is sunny and warm. "
    "In London it rains a little. In Berlin the wind is strong and cold tonight."
)
WEATHER = FunctionSchema("get_weather", "The weather in a city.", {"city": {"type": "string"}}, ["city"])


async def test_barge_in_by_server_vad_stops_audio_and_truncates_at_what_was_played() -> None:
    clock = FakeClock()
    context = LLMContext([{"role": "system", "content": "Talk."}])
    async with (
        RealtimeEmulator() as emu,
        running_service(emu, context=context, clock=clock) as (_, h),
    ):
        emu.add_reply(LONG)
        context.add_message({"role": "user", "content": "Tell me the weather."})
        await h.push(LLMContextFrame(context))
        await emu.wait_for_server_event("response.done")
        await h.down_recorder.wait_for(LLMFullResponseEndFrame)
        audio_before = sum(len(f.audio) for f in h.down if isinstance(f, TTSAudioRawFrame))
        assert audio_before > 5 * 48000  # many seconds of speech, all received at once
        await clock.advance(1.5)  # 1.5 s of it has played when the user talks over it
        await h.push(*audio_frames(loud_16k(400)))
        interruption = await h.down_recorder.wait_for(InterruptionFrame)
        assert any(isinstance(f, InterruptionFrame) for f in h.up)  # both ways
        truncation = await emu.wait_until(lambda: emu.truncations, "truncation")
        assert truncation[0].audio_end_ms == 1500
        assert truncation[0].audio_ms_before * 48 == audio_before
        assert 0 < len(truncation[0].heard_text) < len(LONG)
        # Nothing of the stopped answer follows the interruption.
        after = h.down[h.down.index(interruption) :]
        assert not any(isinstance(f, TTSAudioRawFrame) for f in after)
        assert not emu.client_events_of("response.cancel")  # the server VAD cancels by itself
    emu.assert_valid()


async def test_our_interruption_cancels_the_active_response_and_truncates() -> None:
    clock = FakeClock()
    context = LLMContext([{"role": "system", "content": "Talk."}])
    async with (
        RealtimeEmulator(audio_chunk_ms=50) as emu,
        running_service(emu, context=context, clock=clock) as (service, h),
    ):
        emu.add_reply(LONG)
        emu.add_reply("Short.")
        # Slow the emulator down: stop reading its events right after the first audio.
        context.add_message({"role": "user", "content": "Weather?"})
        await h.push(LLMContextFrame(context))
        await h.down_recorder.wait_for(TTSAudioRawFrame)
        await clock.advance(0.2)
        await h.push(InterruptionFrame())
        await h.down_recorder.wait_for(TTSStoppedFrame)
        done = await emu.wait_for_server_event("response.done")
        truncation = await emu.wait_until(lambda: emu.truncations, "truncation")
        received_ms = truncation[0].audio_ms_before
        assert truncation[0].audio_end_ms == min(200, received_ms)
        if done["response"]["status"] == "cancelled":
            assert emu.client_events_of("response.cancel")
        # The session goes on: the next request is answered.
        context.add_message({"role": "user", "content": "Again?"})
        await h.push(LLMContextFrame(context))
        await h.down_recorder.wait_for(LLMFullResponseEndFrame, count=2)
        assert spoken_text(h.down).endswith("Short.")
        assert service.connected
    emu.assert_valid()


async def test_truncation_refused_never_silences_the_session() -> None:
    context = LLMContext([{"role": "system", "content": "Talk."}])
    async with RealtimeEmulator() as emu, running_service(emu, context=context) as (_, h):
        await emu.inject_error(
            "Audio content of 300ms is already shorter than 900ms",
            type="invalid_request_error",
            code="invalid_value",
            param="audio_end_ms",
        )
        emu.add_reply("Still here.")
        context.add_message({"role": "user", "content": "Are you there?"})
        await h.push(LLMContextFrame(context))
        await h.down_recorder.wait_for(LLMFullResponseEndFrame)
        assert spoken_text(h.down) == "Still here."
        assert not any(isinstance(f, ErrorFrame) for f in h.up)
    emu.assert_valid()


async def _weather(params: FunctionCallParams) -> None:
    await params.result_callback({"city": params.arguments["city"], "sky": "sunny"})


async def test_function_call_runs_and_its_result_gets_exactly_one_response() -> None:
    context = LLMContext([{"role": "system", "content": "Use tools."}], tools=[WEATHER])
    async with (
        RealtimeEmulator() as emu,
        running_service(emu, context=context, aggregators=True) as (service, h),
    ):
        service.register_function("get_weather", _weather)
        emu.add_function_call("get_weather", {"city": "Paris"}, call_id="call_paris")
        emu.add_reply("It is sunny in Paris.")
        await h.push(*audio_frames(speech_16k()))
        await h.down_recorder.wait_for(LLMFullResponseEndFrame, count=2)
        outputs = emu.client_events_of("conversation.item.create")
        assert [e.data["item"]["type"] for e in outputs if e.data] == ["function_call_output"]
        assert outputs[0].data is not None
        assert json.loads(outputs[0].data["item"]["output"]) == {"city": "Paris", "sky": "sunny"}
        creates = emu.client_events_of("response.create")
        assert len(creates) == 1
        types = [e.type for e in emu.client_events]
        assert types.index("conversation.item.create") < types.index("response.create")
        roles = [m["role"] for m in context.messages]
        assert roles == ["system", "user", "assistant", "tool", "assistant"], context.messages
        assert context.messages[2]["tool_calls"][0]["id"] == "call_paris"
        assert context.messages[4]["content"] == "It is sunny in Paris."
    emu.assert_valid()


async def test_client_side_function_and_a_timed_out_one_both_answer_the_model() -> None:
    context = LLMContext([{"role": "system", "content": "Use tools."}], tools=[WEATHER])
    clock = FakeClock()
    async with (
        RealtimeEmulator() as emu,
        running_service(emu, context=context, aggregators=True, clock=clock) as (service, h),
    ):
        service.register_function("get_weather", None, timeout_secs=5)  # answered by the client
        emu.add_function_call("get_weather", {"city": "Oslo"}, call_id="call_oslo")
        emu.add_reply("Cold in Oslo.")
        emu.add_function_call("get_weather", {"city": "Rome"}, call_id="call_rome")
        emu.add_reply("Rome did not answer.")
        context.add_message({"role": "user", "content": "Oslo?"})
        await h.push(LLMContextFrame(context))
        await h.down_recorder.wait_for(FunctionCallInProgressFrame)
        await h.push(
            FunctionCallResultFrame(
                function_name="get_weather",
                tool_call_id="call_oslo",
                arguments={"city": "Oslo"},
                result={"sky": "snow"},
            )
        )
        await h.down_recorder.wait_for(LLMFullResponseEndFrame, count=2)
        context.add_message({"role": "user", "content": "Rome?"})
        await h.push(LLMContextFrame(context))
        await h.down_recorder.wait_for(FunctionCallInProgressFrame, count=2)
        await clock.advance(5)  # nobody answers: the call times out and the model is told
        await h.down_recorder.wait_for(LLMFullResponseEndFrame, count=4)
        outputs = [e.data["item"] for e in emu.client_events_of("conversation.item.create") if e.data]
        outputs = [o for o in outputs if o["type"] == "function_call_output"]
        assert [o["call_id"] for o in outputs] == ["call_oslo", "call_rome"]
        assert json.loads(outputs[0]["output"]) == {"sky": "snow"}
        assert "timed out" in outputs[1]["output"]
        assert len(emu.client_events_of("response.create")) == 4  # 2 turns + 1 per settled call
    emu.assert_valid()


async def test_server_error_is_reported_and_the_session_goes_on() -> None:
    async with RealtimeEmulator() as emu, running_service(emu, context=LLMContext()) as (service, h):
        await emu.inject_error("Something broke.", type="server_error", code="server_error")
        error = await h.up_recorder.wait_for(ErrorFrame)
        assert not error.fatal and error.category is ErrorCategory.SERVER
        assert "Something broke." in error.error
        emu.fail_next_response("The model failed.")
        await h.push(LLMContextFrame(service.context))
        failed = await h.up_recorder.wait_for(ErrorFrame, count=2)
        assert "The model failed." in failed.error and not failed.fatal
        await h.down_recorder.wait_for(LLMFullResponseEndFrame)  # the response is still closed
    emu.assert_valid()


@pytest.mark.parametrize("mode", ["event", "http"])
async def test_wrong_api_key_is_a_clear_fatal_error(mode: Any) -> None:
    async with RealtimeEmulator(auth_failure=mode) as emu:
        service = OpenAIRealtimeService(api_key="wrong", base_url=emu.base_url)
        async with PipelineHarness(service) as h:
            error = await h.up_recorder.wait_for(ErrorFrame)
        assert error.fatal and error.category is ErrorCategory.AUTHENTICATION
        assert "API key" in error.error
        assert len(emu.connections) <= 1  # no reconnect storm with a bad key
    emu.assert_valid()


async def test_missing_api_key_is_a_clear_fatal_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    monkeypatch.delenv("OPENAI_BASE_URL", raising=False)
    service = OpenAIRealtimeService()
    async with PipelineHarness(service) as h:
        error = await h.up_recorder.wait_for(ErrorFrame)
    assert error.fatal and "OPENAI_API_KEY" in error.error


async def test_lost_connection_reconnects_and_restores_the_conversation() -> None:
    context = LLMContext([{"role": "system", "content": "Remember."}])
    async with RealtimeEmulator() as emu, running_service(emu, context=context) as (service, h):
        emu.add_reply("Noted, your name is Ada.")
        context.add_message({"role": "user", "content": "My name is Ada."})
        await h.push(LLMContextFrame(context))
        await h.down_recorder.wait_for(LLMFullResponseEndFrame)
        context.add_message({"role": "assistant", "content": "Noted, your name is Ada."})  # the aggregator's
        emu.drop_connection()
        second = await emu.wait_for_connection(2)
        await emu.wait_until(lambda: len(second.items) >= 2, "replayed items")
        assert second.session["instructions"] == "Remember."
        assert [(i["role"], i["content"][0]["text"]) for i in second.items] == [
            ("user", "My name is Ada."),
            ("assistant", "Noted, your name is Ada."),
        ]
        emu.add_reply("Ada.")
        context.add_message({"role": "user", "content": "What is my name?"})
        await h.push(LLMContextFrame(context))
        await h.down_recorder.wait_for(LLMFullResponseEndFrame, count=2)
        assert spoken_text(h.down).endswith("Ada.")
        assert not any(isinstance(f, ErrorFrame) and f.fatal for f in h.up)
        assert service.connected
    emu.assert_valid()


async def test_reconnect_failure_is_a_fatal_error() -> None:
    emu = RealtimeEmulator()
    async with emu, running_service(emu, context=LLMContext(), reconnect_attempts=1) as (_, h):
        assert emu._server is not None
        emu._server.close()  # nobody answers any more
        emu.drop_connection()
        error = await h.up_recorder.wait_for(ErrorFrame, timeout=15)
        assert error.fatal and error.category is ErrorCategory.CONNECTIVITY
        assert "reconnect" in error.error
    emu.assert_valid()


async def test_reset_conversation_starts_a_fresh_server_conversation_from_the_context() -> None:
    context = LLMContext([{"role": "system", "content": "Fresh."}, {"role": "user", "content": "Hi."}])
    async with RealtimeEmulator() as emu, running_service(emu, context=context) as (service, h):
        lost: list[object] = []
        service.add_event_handler("on_connection_lost", lambda *args: lost.append(args))
        context.set_messages([{"role": "system", "content": "Fresh."}, {"role": "user", "content": "Again."}])
        await service.reset_conversation()
        second = await emu.wait_for_connection(2)
        await emu.wait_until(lambda: second.items, "replayed items")
        assert [i["content"][0]["text"] for i in second.items] == ["Again."]
        assert emu.connections[0].closed.is_set()
        await service.wait_until_ready(5)
        assert not lost  # a reset is not a lost connection
        assert not any(isinstance(f, ErrorFrame) for f in h.up)
        emu.drop_connection()  # while a real loss is one: the handler above would have heard
        await emu.wait_for_connection(3)
        await service.wait_until_ready(5)
        assert len(lost) == 1
    emu.assert_valid()
