"""The RTVIProcessor's API beyond the handshake: client readiness set by the bot, the deprecated
switches and function-call path, actions from inside the pipeline, the transport's muted start,
answers pushed from anywhere, lenient legacy input."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import pytest

from helpers.rtvi import RTVISession
from voxloop.frames import (
    ErrorFrame,
    Frame,
    InputAudioRawFrame,
    InputTransportStartAudioStreamingFrame,
    LLMMessagesAppendFrame,
)
from voxloop.pipeline import FrameDirection, FrameProcessor
from voxloop.rtvi import (
    RTVIAction,
    RTVIActionArgument,
    RTVIActionFrame,
    RTVIClientMessageFrame,
    RTVIProcessor,
    RTVIServerResponseFrame,
)
from voxloop.testing import MemoryTransport


async def test_the_bot_can_set_the_client_ready_itself_once() -> None:
    ready: list[bool] = []
    async with RTVISession() as s:
        s.rtvi.add_event_handler("on_client_ready", lambda p: ready.append(True))
        await s.rtvi.set_client_ready()
        bot_ready = await s.wait_for_message("bot-ready")
        await s.rtvi.set_client_ready()
        await s.ready()  # a client-ready after it changes nothing either
        assert s.rtvi.client_ready
    assert ready == [True]
    assert "id" not in bot_ready and bot_ready["data"]["version"] == "2.1.0"
    assert len(s.of_type("bot-ready")) == 1
    assert len(s.down(InputTransportStartAudioStreamingFrame)) == 1


async def test_errors_can_still_be_turned_off_with_the_deprecated_switch() -> None:
    async with RTVISession() as s:
        assert s.rtvi.errors_enabled
        with pytest.warns(DeprecationWarning):
            s.rtvi.set_errors_enabled(False)
        assert not s.rtvi.errors_enabled
        await s.harness.push_up(ErrorFrame("not for the client"))
        with pytest.warns(DeprecationWarning):
            s.rtvi.set_errors_enabled(True)
        await s.harness.push_up(ErrorFrame("for the client"))
        await s.wait_for_message("error")
        await s.harness.up_recorder.wait_for(ErrorFrame, count=2)
    assert [m["data"]["error"] for m in s.of_type("error")] == ["for the client"]
    assert [f.error for f in s.up(ErrorFrame)] == ["not for the client", "for the client"]  # both go on


async def test_the_deprecated_function_call_handler_asks_the_client_to_run_it() -> None:
    params = SimpleNamespace(function_name="get_time", tool_call_id="call_7", arguments={"tz": "UTC"})
    async with RTVISession() as s:
        await s.ready()
        with pytest.warns(DeprecationWarning):
            await s.rtvi.handle_function_call(params)
        message = await s.wait_for_message("llm-function-call")
    assert message == {
        "label": "rtvi-ai",
        "type": "llm-function-call",
        "data": {"function_name": "get_time", "tool_call_id": "call_7", "args": {"tz": "UTC"}},
    }


async def test_an_action_frame_runs_a_registered_action() -> None:
    rtvi = RTVIProcessor(client_ready_timeout_secs=None)
    rtvi.register_action(
        RTVIAction(
            "math", "double", "number", lambda p, s, a: a["x"] * 2, [RTVIActionArgument("x", "number")]
        ),
        warn=False,
    )
    async with RTVISession(rtvi) as s:
        await s.ready("0.3.0")
        await s.harness.push(RTVIActionFrame("math", "double", {"x": 21}, message_id="act1"))
        await s.harness.push(RTVIActionFrame("math", "halve", {"x": 2}, message_id="act2"))
        await s.harness.push(RTVIActionFrame("math", "double", {"x": 1}))  # nobody waits for this one
        await s.harness.push(RTVIActionFrame("math", "double", {"x": 4}, message_id="act3"))
        await s.wait_for_message("action-response", count=2)
    by_id = {m.get("id"): m for m in s.messages}
    assert by_id["act1"] == {
        "label": "rtvi-ai",
        "type": "action-response",
        "id": "act1",
        "data": {"result": 42},
    }
    assert by_id["act2"]["type"] == "error-response"
    assert by_id["act2"]["data"] == {"error": "Action math:halve not registered"}
    assert by_id["act3"]["data"] == {"result": 8}
    assert len(s.of_type("action-response")) == 2
    assert s.down(RTVIActionFrame) == []  # consumed: it was RTVI's


async def test_with_the_transport_given_no_audio_flows_before_the_client_is_ready() -> None:
    transport = MemoryTransport(record_frames=False)
    rtvi = RTVIProcessor(client_ready_timeout_secs=None, transport=transport)
    early, late = b"\x01\x00" * 320, b"\x02\x00" * 320
    async with RTVISession(rtvi, with_input=True, transport=transport) as s:
        await transport.input().push_audio(early, 16000, 1)
        await s.ready()
        await transport.input().push_audio(late, 16000, 1)
        await s.harness.down_recorder.wait_for(InputAudioRawFrame)
    assert [f.audio for f in s.down(InputAudioRawFrame)] == [late]


async def test_without_the_transport_audio_flows_from_the_start() -> None:
    async with RTVISession(with_input=True) as s:
        await s.transport.input().push_audio(b"\x01\x00" * 320, 16000, 1)
        await s.harness.down_recorder.wait_for(InputAudioRawFrame)
        assert not s.rtvi.client_ready


class Answerer(FrameProcessor):
    """An app processor below RTVI that answers client messages by pushing responses on downstream."""

    async def process_frame(self, frame: Frame, direction: FrameDirection) -> None:
        if isinstance(frame, RTVIClientMessageFrame):
            if frame.type == "fail":
                await self.push_frame(RTVIServerResponseFrame(client_msg=frame, error="cannot"))
            else:
                await self.push_frame(RTVIServerResponseFrame(client_msg=frame, data={"ok": frame.data}))
            return
        await self.push_frame(frame, direction)


async def test_a_response_pushed_downstream_answers_the_client_once() -> None:
    async with RTVISession(RTVIProcessor(client_ready_timeout_secs=None), Answerer()) as s:
        await s.ready()
        await s.request("client-message", {"t": "echo", "d": 5}, id="cm1")
        await s.request("client-message", {"t": "fail"}, id="cm2")
        await s.wait_for_message("server-response")
        await s.wait_for_message("error-response")
        await s.request("client-message", {"t": "echo", "d": 6}, id="cm3")
        await s.wait_for_message("server-response", count=2)
    assert s.of_type("server-response") == [
        {"label": "rtvi-ai", "type": "server-response", "id": "cm1", "data": {"t": "echo", "d": {"ok": 5}}},
        {"label": "rtvi-ai", "type": "server-response", "id": "cm3", "data": {"t": "echo", "d": {"ok": 6}}},
    ]
    assert s.of_type("error-response") == [
        {"label": "rtvi-ai", "type": "error-response", "id": "cm2", "data": {"error": "cannot"}}
    ]


@pytest.mark.parametrize(
    "data", [{"version": 2}, {"version": ["1", "0"]}, "nonsense", {"about": 5, "version": {}}]
)
async def test_a_client_ready_that_does_not_validate_is_a_0x_client_ready_at_once(data: Any) -> None:
    async with RTVISession() as s:  # no client-ready timeout: only the client-ready itself can do it
        await s.request("client-ready", data, id="old1")
        bot_ready = await s.wait_for_message("bot-ready")
        assert s.rtvi.client_ready and s.rtvi.client_generation == 0
    assert bot_ready["id"] == "old1" and bot_ready["data"]["version"] == "0.3.0"
    assert s.of_type("error-response") == []


@pytest.mark.parametrize("role", ["developer", "tool", "narrator"])
async def test_append_to_context_takes_any_role(role: str) -> None:
    async with RTVISession() as s:
        await s.ready("1.0.0")
        await s.request("append-to-context", {"role": role, "content": "note"})
        append = await s.harness.down_recorder.wait_for(LLMMessagesAppendFrame)
        await s.request("append-to-context", {"role": "", "content": "x"}, id="empty1")
        refusal = await s.wait_for_message("error-response")
    assert append.messages == [{"role": role, "content": "note"}]
    assert refusal["id"] == "empty1" and "role" in refusal["data"]["error"]


async def test_the_initial_config_is_applied_once_even_after_a_late_client_ready() -> None:
    from voxloop.rtvi import RTVIService, RTVIServiceOption
    from voxloop.testing import FakeClock

    applied: list[Any] = []
    rtvi = RTVIProcessor(
        client_ready_timeout_secs=1,
        config=[
            {"service": "vad", "options": [{"name": "stop_secs", "value": 0.8}]},
            {"service": "llm", "options": [{"name": "model", "value": "x"}]},  # not registered: kept
        ],
    )
    rtvi.register_service(
        RTVIService(
            "vad", [RTVIServiceOption("stop_secs", "number", lambda p, s, o: applied.append(o.value))]
        ),
        warn=False,
    )
    clock = FakeClock()
    async with RTVISession(rtvi, clock=clock) as s:
        await clock.advance(1.1)  # no client-ready: the bot becomes ready anyway
        await s.wait_for_message("bot-ready")
        await s.request("client-ready", {"version": "0.3.0"}, id="late1")
        bot_ready = await s.wait_for_message("bot-ready", count=2)  # the late client-ready is answered too
    assert applied == [0.8]
    assert bot_ready["id"] == "late1"
    assert bot_ready["data"]["config"][1] == {"service": "llm", "options": [{"name": "model", "value": "x"}]}
