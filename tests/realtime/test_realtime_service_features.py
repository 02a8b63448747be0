"""OpenAIRealtimeService's app-facing features against the emulator: paused input, item retrieval and
item events, an app's own client events, tools set mid-session, the connection events."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

pytest.importorskip("openai")

from test_realtime_service_support import appended_bytes, audio_frames, running_service, speech_16k

from voxloop.context import LLMContext
from voxloop.frames import InputImageRawFrame, LLMContextFrame, LLMFullResponseEndFrame, LLMSetToolsFrame
from voxloop.services.openai import OpenAIRealtimeService
from voxloop.testing.realtime_emulator import RealtimeEmulator

pytestmark = [pytest.mark.timeout(60), pytest.mark.usefixtures("no_leaked_tasks")]

JPEG = b"\xff\xd8\xff\xe0" + bytes(64) + b"\xff\xd9"


async def test_input_starts_paused_and_resumes_when_asked() -> None:
    async with (
        RealtimeEmulator() as emu,
        running_service(emu, context=LLMContext(), start_audio_paused=True, start_video_paused=True) as (
            service,
            h,
        ),
    ):
        await h.push(*audio_frames(speech_16k()[:16000]), InputImageRawFrame(JPEG, (8, 8), "JPEG"))
        await h.down_recorder.wait_for(InputImageRawFrame)  # the service has seen them all
        service.set_audio_input_paused(False)
        service.set_video_input_paused(False)
        await h.push(*audio_frames(b"\x00\x01" * 3200), InputImageRawFrame(JPEG, (8, 8), "JPEG"))
        await emu.wait_for_client_event("conversation.item.create")
        await emu.wait_until(lambda: appended_bytes(emu) >= 100 * 48, "audio after resuming")
        assert appended_bytes(emu) <= 200 * 48  # none of the half second sent while paused
        assert len(emu.client_events_of("conversation.item.create")) == 1
        with pytest.raises(ValueError):
            service.set_video_frame_detail("sharp")
        service.set_video_frame_detail("high")
    with pytest.raises(ValueError):
        OpenAIRealtimeService(api_key="k", video_frame_detail="medium")
    emu.assert_valid()


async def test_items_can_be_retrieved_and_their_events_reach_the_app() -> None:
    created: list[tuple[str, Any]] = []
    updated: list[str] = []
    item_done = asyncio.Event()

    def on_updated(service: OpenAIRealtimeService, item_id: str, item: Any) -> None:
        updated.append(item_id)
        item_done.set()

    context = LLMContext()
    async with RealtimeEmulator() as emu, running_service(emu, context=context) as (service, h):
        context.add_message({"role": "user", "content": "Hello."})
        on_created = lambda s, i, item: created.append((i, item))  # noqa: E731
        service.add_event_handler("on_conversation_item_created", on_created)
        service.add_event_handler("on_conversation_item_updated", on_updated)
        emu.add_reply("Hi!")
        await h.push(LLMContextFrame(context))
        await h.down_recorder.wait_for(LLMFullResponseEndFrame)
        await emu.wait_until(lambda: len(emu.connections[0].items) >= 2, "both items")
        bot_id = emu.connections[0].items[1]["id"]
        while bot_id not in updated:
            item_done.clear()
            await asyncio.wait_for(item_done.wait(), 5)
        user_id = emu.connections[0].items[0]["id"]
        assert [(i, item.role) for i, item in created] == [(user_id, "user"), (bot_id, "assistant")]
        # Two callers, one request; the server's copy comes back with its content.
        first, second = await asyncio.gather(
            service.retrieve_conversation_item(bot_id), service.retrieve_conversation_item(bot_id)
        )
        assert first.id == second.id == bot_id and first.role == "assistant"
        retrieves = emu.client_events_of("conversation.item.retrieve")
        assert [r.data["event_id"] for r in retrieves if r.data] == [f"rci_{bot_id}"]
        with pytest.raises(LookupError, match="does not exist"):
            await service.retrieve_conversation_item("item_nonexistent")
        # An app's own event goes as it is.
        await service.send_client_event({"type": "input_audio_buffer.clear", "event_id": "app_clear"})
        clear = await emu.wait_for_client_event("input_audio_buffer.clear")
        assert clear.data == {"type": "input_audio_buffer.clear", "event_id": "app_clear"}
    emu.assert_valid()


async def test_tools_set_mid_session_reach_the_server_before_the_next_turn() -> None:
    context = LLMContext([{"role": "system", "content": "Help."}])
    function = {"name": "get_time", "description": "The time.", "parameters": {}}
    tool = {"type": "function", "function": function}
    async with (
        RealtimeEmulator() as emu,
        running_service(emu, context=context, aggregators=True) as (_, h),
    ):
        await h.push(LLMSetToolsFrame(tools=[tool]))
        await emu.wait_until(lambda: emu.connections[0].session.get("tools"), "tools in the session")
        assert [t["name"] for t in emu.connections[0].session["tools"]] == ["get_time"]
        assert not emu.client_events_of("response.create")  # no turn was needed for it
    emu.assert_valid()


async def test_connection_events_fire_on_connect_loss_and_reconnect() -> None:
    connected: list[bool] = []
    lost: list[bool] = []
    async with RealtimeEmulator() as emu, running_service(emu, context=LLMContext()) as (service, _):
        service.add_event_handler("on_connected", lambda s: connected.append(True))
        service.add_event_handler("on_connection_lost", lambda s: lost.append(True))
        await service.reset_conversation()  # asked for: a new connection, not a lost one
        await emu.wait_for_connection(2)
        await service.wait_until_ready(5)  # session.updated comes after the on_connected call
        assert connected == [True] and lost == []
        emu.drop_connection()
        await emu.wait_for_connection(3)
        await service.wait_until_ready(5)
        assert connected == [True, True] and lost == [True]
    emu.assert_valid()
