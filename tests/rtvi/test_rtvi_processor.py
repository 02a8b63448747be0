from __future__ import annotations

import asyncio
import base64
import logging

import pytest

from helpers.rtvi import RTVISession
from voxloop.frames import (
    EndFrame,
    ErrorFrame,
    FunctionCallResultFrame,
    InputAudioRawFrame,
    InputDTMFFrame,
    InputTransportStartAudioStreamingFrame,
    InterruptionFrame,
    KeypadEntry,
    LLMConfigureOutputFrame,
    LLMMessagesAppendFrame,
    TTSSpeakFrame,
)
from voxloop.pipeline import FrameProcessor
from voxloop.rtvi import (
    ClientMessage,
    RTVIAction,
    RTVIActionArgument,
    RTVIClientMessageFrame,
    RTVIProcessor,
    RTVIServerMessageFrame,
    RTVIServerResponseFrame,
    RTVIService,
    RTVIServiceOption,
)
from voxloop.testing import FakeClock

ABOUT = {"library": "voxloop", "library_version": "0.1.0"}


async def test_handshake_current_client() -> None:
    ready: list[bool] = []
    async with RTVISession() as s:
        s.rtvi.add_event_handler("on_client_ready", lambda p: ready.append(True))
        bot_ready = await s.ready("2.1.0")
        assert s.rtvi.client_ready and s.rtvi.client_version == (2, 1, 0)
    assert bot_ready == {
        "label": "rtvi-ai",
        "type": "bot-ready",
        "id": "ready001",
        "data": {"version": "2.1.0", "about": ABOUT},
    }
    assert ready == [True]
    assert len(s.down(InputTransportStartAudioStreamingFrame)) == 1
    assert s.of_type("error-response") == []


async def test_handshake_1x_client_gets_its_version_back() -> None:
    async with RTVISession() as s:
        bot_ready = await s.ready("1.2.0")
        assert s.rtvi.client_generation == 1
    assert bot_ready["data"] == {"version": "1.2.0", "about": ABOUT}
    assert s.of_type("error-response") == []


@pytest.mark.parametrize("version", ["0.3.0", None])
async def test_handshake_0x_client_gets_config(version) -> None:
    config = [{"service": "tts", "options": [{"name": "voice", "value": "amy"}]}]
    async with RTVISession(RTVIProcessor(config=config, client_ready_timeout_secs=None)) as s:
        bot_ready = await s.ready(version)
        assert s.rtvi.client_generation == 0
    assert bot_ready["data"] == {"version": "0.3.0", "about": ABOUT, "config": config}


@pytest.mark.parametrize(
    ("version", "error"),
    [
        (
            "3.0.0",
            "RTVI version 3.0.0 is not compatible with server protocol 2.1.0. "
            "Compatibility issues may occur.",
        ),
        ("1.2", "Invalid client version format (1.2). Compatibility issues may occur."),
    ],
)
async def test_handshake_with_unusable_version_warns_and_goes_on(version, error) -> None:
    async with RTVISession() as s:
        bot_ready = await s.ready(version)
    assert s.of_type("error-response") == [
        {"label": "rtvi-ai", "type": "error-response", "id": "ready001", "data": {"error": error}}
    ]
    assert bot_ready["data"]["version"] == "2.1.0"
    assert s.rtvi.client_ready


async def test_client_ready_without_about_and_with_bad_about() -> None:
    async with RTVISession() as s:
        await s.request("client-ready", {"version": "2.1.0", "about": "nonsense"})
        await s.wait_for_message("bot-ready")
    assert s.rtvi.client_ready


async def test_manual_bot_ready() -> None:
    async with RTVISession(RTVIProcessor(auto_bot_ready=False, client_ready_timeout_secs=None)) as s:
        await s.request("client-ready", {"version": "2.1.0"}, id="r1")
        await s.harness.down_recorder.wait_for(InputTransportStartAudioStreamingFrame)
        assert s.of_type("bot-ready") == []
        await s.rtvi.set_bot_ready(about={"library": "my-bot", "library_version": "9"})
        bot_ready = await s.wait_for_message("bot-ready")
    assert bot_ready["id"] == "r1"
    assert bot_ready["data"]["about"] == {"library": "my-bot", "library_version": "9"}


async def test_silent_client_does_not_stall_the_bot(caplog) -> None:
    clock = FakeClock()
    rtvi = RTVIProcessor(client_ready_timeout_secs=5)
    ready: list[bool] = []
    rtvi.add_event_handler("on_client_ready", lambda p: ready.append(True))
    async with RTVISession(rtvi, clock=clock) as s:
        await clock.advance(4.9)
        assert ready == [] and s.of_type("bot-ready") == []
        with caplog.at_level(logging.WARNING, logger="voxloop.rtvi"):
            await clock.advance(0.2)
            bot_ready = await s.wait_for_message("bot-ready")
        assert ready == [True] and rtvi.client_ready_timed_out
        assert "no client-ready within 5s" in caplog.text
        assert "id" not in bot_ready
        # A late client-ready is still answered, with its id.
        await s.ready("2.1.0")
        await s.wait_for_message("bot-ready", count=2)
    assert s.of_type("bot-ready")[1]["id"] == "ready001"
    assert ready == [True]
    assert len(s.down(InputTransportStartAudioStreamingFrame)) == 1


async def test_client_message_and_responses() -> None:
    received: list[ClientMessage] = []
    handled = asyncio.Event()

    def on_message(processor: RTVIProcessor, message: ClientMessage) -> None:
        received.append(message)
        handled.set()

    async with RTVISession() as s:
        s.rtvi.add_event_handler("on_client_message", on_message)
        await s.ready()
        await s.request("client-message", {"t": "get-weather", "d": {"city": "Oslo"}}, id="cm000001")
        frame = await s.harness.down_recorder.wait_for(RTVIClientMessageFrame)
        await handled.wait()
        assert (frame.msg_id, frame.type, frame.data) == ("cm000001", "get-weather", {"city": "Oslo"})
        await s.rtvi.send_server_response(received[0], {"temp": 21})
        await s.rtvi.send_error_response(received[0], "no such city")
        await s.harness.push_up(RTVIServerResponseFrame(client_msg=received[0], data="via frame"))
        await s.harness.push_up(RTVIServerResponseFrame(client_msg=received[0], error="via frame"))
        await s.rtvi.send_server_message({"hello": "client"})
        await s.harness.push_up(RTVIServerMessageFrame(data=[1, 2]))
        await s.wait_for_message("server-message", count=2)
    assert received == [ClientMessage("cm000001", "get-weather", {"city": "Oslo"})]
    assert s.of_type("server-response") == [
        {
            "label": "rtvi-ai",
            "type": "server-response",
            "id": "cm000001",
            "data": {"t": "get-weather", "d": {"temp": 21}},
        },
        {
            "label": "rtvi-ai",
            "type": "server-response",
            "id": "cm000001",
            "data": {"t": "get-weather", "d": "via frame"},
        },
    ]
    assert s.of_type("error-response") == [
        {"label": "rtvi-ai", "type": "error-response", "id": "cm000001", "data": {"error": "no such city"}},
        {"label": "rtvi-ai", "type": "error-response", "id": "cm000001", "data": {"error": "via frame"}},
    ]
    assert [m["data"] for m in s.of_type("server-message")] == [{"hello": "client"}, [1, 2]]


async def test_send_text_interrupts_then_appends_and_runs() -> None:
    async with RTVISession() as s:
        await s.ready()
        await s.request("send-text", {"content": "What's up?", "options": {}})
        append = await s.harness.down_recorder.wait_for(LLMMessagesAppendFrame)
    assert append.messages == [{"role": "user", "content": "What's up?"}] and append.run_llm is True
    frames = s.harness.down_recorder.frames
    assert frames.index(s.down(InterruptionFrame)[0]) < frames.index(append)
    assert len(s.up(InterruptionFrame)) == 1  # the interruption goes both ways
    assert s.down(LLMConfigureOutputFrame) == []


async def test_send_text_without_audio_or_running() -> None:
    async with RTVISession() as s:
        await s.ready()
        options = {"run_immediately": False, "audio_response": False}
        await s.request("send-text", {"content": "note this", "options": options})
        await s.harness.down_recorder.wait_for(LLMConfigureOutputFrame, count=2)
    configure = s.down(LLMConfigureOutputFrame)
    assert [c.skip_tts for c in configure] == [True, False]
    (append,) = s.down(LLMMessagesAppendFrame)
    frames = s.harness.down_recorder.frames
    assert frames.index(configure[0]) < frames.index(append) < frames.index(configure[1])
    assert append.run_llm is False
    assert s.down(InterruptionFrame) == []


async def test_legacy_append_to_context() -> None:
    async with RTVISession() as s:
        await s.ready("1.0.0")
        await s.request("append-to-context", {"role": "user", "content": "hi", "run_immediately": True})
        append = await s.harness.down_recorder.wait_for(LLMMessagesAppendFrame)
    assert append.messages == [{"role": "user", "content": "hi"}] and append.run_llm
    assert len(s.down(InterruptionFrame)) == 1


async def test_client_function_call_result() -> None:
    async with RTVISession() as s:
        await s.ready()
        data = {
            "function_name": "get_time",
            "tool_call_id": "call_1",
            "arguments": {"tz": "UTC"},
            "result": {"time": "12:00"},
        }
        await s.request("llm-function-call-result", data)
        result = await s.harness.down_recorder.wait_for(FunctionCallResultFrame)
    assert (result.function_name, result.tool_call_id) == ("get_time", "call_1")
    assert result.arguments == {"tz": "UTC"} and result.result == {"time": "12:00"}


async def test_disconnect_bot_ends_the_session_gracefully() -> None:
    session = RTVISession()
    async with session as s:
        await s.ready()
        await s.request("disconnect-bot")
        await s.harness.task.wait_until_finished()
    end = s.down(EndFrame)
    assert len(end) == 1 and "disconnect" in end[0].reason


async def test_raw_audio_and_batches_enter_the_audio_path() -> None:
    chunk = (b"\x01\x00" * 160, b"\x02\x00" * 160)
    async with RTVISession() as s:
        await s.ready()
        encoded = base64.b64encode(chunk[0]).decode()
        await s.request("raw-audio", {"base64Audio": encoded, "sampleRate": 16000, "numChannels": 1})
        batch = [base64.b64encode(c).decode() for c in chunk]
        await s.request("raw-audio-batch", {"base64AudioBatch": batch, "sampleRate": 8000, "numChannels": 1})
        await s.harness.down_recorder.wait_for(InputAudioRawFrame, count=3)
        await s.request("raw-audio", {"base64Audio": "***", "sampleRate": 16000, "numChannels": 1}, id="bad1")
        await s.request(
            "raw-audio", {"base64Audio": "AAE=AA==", "sampleRate": 16000, "numChannels": 1}, id="bad2"
        )
        await s.request(
            "raw-audio", {"base64Audio": "AAEC", "sampleRate": 16000, "numChannels": 1}, id="bad3"
        )
        await s.wait_for_message("error-response", count=3)
    frames = s.down(InputAudioRawFrame)
    assert [(f.audio, f.sample_rate) for f in frames] == [
        (chunk[0], 16000),
        (chunk[0], 8000),
        (chunk[1], 8000),
    ]
    errors = {m["id"]: m["data"]["error"] for m in s.of_type("error-response")}
    assert errors["bad1"] == "Invalid message: raw-audio: audio is not base64"
    assert "not whole 16-bit samples" in errors["bad3"]


async def test_dtmf_pushes_one_frame_per_key_in_order() -> None:
    async with RTVISession() as s:
        await s.ready()
        await s.request("dtmf", {"buttons": ["1", "2", "#", "*", "0"]})
        await s.harness.down_recorder.wait_for(InputDTMFFrame, count=5)
        await s.request("dtmf", {"button": "1"}, id="legacy01")
        await s.wait_for_message("error-response")
    assert [f.button for f in s.down(InputDTMFFrame)] == [
        KeypadEntry.ONE,
        KeypadEntry.TWO,
        KeypadEntry.POUND,
        KeypadEntry.STAR,
        KeypadEntry.ZERO,
    ]
    assert s.of_type("error-response")[0]["id"] == "legacy01"


async def test_upstream_errors_become_rtvi_errors() -> None:
    async with RTVISession() as s:
        await s.harness.push_up(ErrorFrame("tts unavailable"), ErrorFrame("gone", fatal=True))
        await s.wait_for_message("error", count=2)
    assert [m["data"] for m in s.of_type("error")] == [
        {"error": "tts unavailable", "fatal": False},
        {"error": "gone", "fatal": True},
    ]
    assert len(s.up(ErrorFrame)) == 2  # and the task still hears about them


async def test_unknown_and_invalid_messages_get_answers_and_the_session_goes_on() -> None:
    async with RTVISession() as s:
        await s.ready()
        await s.request("teleport", {}, id="t1")
        await s.send("{broken")
        await s.send({"label": "someone-else", "type": "client-ready"})
        await s.request("client-message", {"nope": 1}, id="t2")
        await s.wait_for_message("error-response", count=2)
        await s.wait_for_message("error")
        await s.request("client-message", {"t": "still-working"}, id="t3")
        await s.harness.down_recorder.wait_for(RTVIClientMessageFrame)
    assert [m["id"] for m in s.of_type("error-response")] == ["t1", "t2"]


async def test_a_failing_handler_gets_an_error_response() -> None:
    async with RTVISession() as s:

        async def broken(processor, service, arguments):
            raise RuntimeError("kaboom")

        s.rtvi.register_action(RTVIAction("app", "explode", "bool", broken), warn=False)
        await s.ready("0.3.0")
        await s.request("action", {"service": "app", "action": "explode"}, id="x1")
        reply = await s.wait_for_message("error-response")
    assert reply == {
        "label": "rtvi-ai",
        "type": "error-response",
        "id": "x1",
        "data": {"error": "Exception processing message: kaboom"},
    }


async def test_interrupt_bot() -> None:
    async with RTVISession() as s:
        await s.rtvi.interrupt_bot()
        await s.harness.down_recorder.wait_for(InterruptionFrame)
    assert len(s.up(InterruptionFrame)) == 1


class Speaker(FrameProcessor):
    speaks_text = True


async def test_legacy_config_and_actions() -> None:
    applied: list[tuple[str, dict]] = []

    async def set_voice(processor, service, option):
        applied.append((service, option))

    rtvi = RTVIProcessor(
        client_ready_timeout_secs=None,
        config=[{"service": "tts", "options": [{"name": "voice", "value": "amy"}]}],
    )
    with pytest.warns(DeprecationWarning):
        rtvi.register_service(RTVIService("tts", [RTVIServiceOption("voice", "string", set_voice)]))
    with pytest.warns(DeprecationWarning):
        rtvi.register_action(
            RTVIAction(
                "math",
                "add",
                "number",
                lambda p, s, a: a["x"] + a["y"],
                [RTVIActionArgument("x", "number"), RTVIActionArgument("y", "number")],
            )
        )
    async with RTVISession(rtvi, Speaker()) as s:
        await s.ready("0.3.0")
        await s.request("describe-config", id="d1")
        await s.request("describe-actions", id="d2")
        await s.request("get-config", id="d3")
        changes = [{"service": "tts", "options": [{"name": "voice", "value": "bob"}]}]
        await s.request("update-config", {"config": changes, "interrupt": True}, id="d4")
        unknown = [
            {"service": "tts", "options": [{"name": "voice", "value": "eve"}]},
            {"service": "llm", "options": [{"name": "model", "value": "tiny"}]},
        ]
        await s.request("update-config", {"config": unknown}, id="d6")
        await s.request(
            "update-config",
            {"config": [{"service": "tts", "options": [{"name": "voice", "value": 5}]}]},
            id="d5",
        )
        arguments = [{"name": "x", "value": 2}, {"name": "y", "value": 3}]
        await s.request("action", {"service": "math", "action": "add", "arguments": arguments}, id="a1")
        await s.request(
            "action",
            {"service": "tts", "action": "say", "arguments": [{"name": "text", "value": "Hello!"}]},
            id="a2",
        )
        await s.request("action", {"service": "tts", "action": "sing"}, id="a3")
        await s.wait_for_message("action-response", count=2)
        await s.wait_for_message("error-response", count=3)
        speak = await s.harness.down_recorder.wait_for(TTSSpeakFrame)
    by_id = {m.get("id"): m for m in s.messages}
    assert by_id["d1"] == {
        "label": "rtvi-ai",
        "type": "config-available",
        "id": "d1",
        "data": {"config": [{"name": "tts", "options": [{"name": "voice", "type": "string"}]}]},
    }
    actions = by_id["d2"]["data"]["actions"]
    assert {
        "service": "math",
        "action": "add",
        "result": "number",
        "arguments": [{"name": "x", "type": "number"}, {"name": "y", "type": "number"}],
    } in actions
    assert any(a["service"] == "tts" and a["action"] == "say" for a in actions)
    assert by_id["d3"]["data"] == {
        "config": [{"service": "tts", "options": [{"name": "voice", "value": "amy"}]}]
    }
    assert by_id["d4"]["type"] == "config" and by_id["d4"]["data"] == {
        "config": [{"service": "tts", "options": [{"name": "voice", "value": "bob"}]}]
    }
    # The initial config went through the handler at bot-ready, then the update; each as an option.
    assert applied == [("tts", {"name": "voice", "value": "amy"}), ("tts", {"name": "voice", "value": "bob"})]
    assert [option.value for _, option in applied] == ["amy", "bob"]
    # A service nobody registered is refused, and nothing of that request is applied.
    assert by_id["d6"] == {
        "label": "rtvi-ai",
        "type": "error-response",
        "id": "d6",
        "data": {"error": "Service llm not registered"},
    }
    assert len(s.down(InterruptionFrame)) == 1
    assert by_id["d5"] == {
        "label": "rtvi-ai",
        "type": "error-response",
        "id": "d5",
        "data": {"error": "Option tts.voice must be of type string"},
    }
    assert by_id["a1"] == {"label": "rtvi-ai", "type": "action-response", "id": "a1", "data": {"result": 5}}
    assert by_id["a2"]["data"] == {"result": True} and speak.text == "Hello!"
    assert by_id["a3"]["data"] == {"error": "Action tts:sing not registered"}


async def test_function_call_result_upstream_direction_not_needed() -> None:
    """Upstream frames that are not RTVI's pass through untouched, and no error is sent about them."""
    frame = FunctionCallResultFrame("f", "1", {}, "r")
    async with RTVISession() as s:
        await s.harness.push_up(frame)
        arrived = await s.harness.up_recorder.wait_for(FunctionCallResultFrame)
    assert arrived is frame
    assert (frame.function_name, frame.tool_call_id, frame.arguments, frame.result) == ("f", "1", {}, "r")
    assert s.up(FunctionCallResultFrame) == [frame]
    # The observer reports the finished call (as for any result); the processor adds nothing.
    assert s.messages == [
        {
            "label": "rtvi-ai",
            "type": "llm-function-call-stopped",
            "data": {"tool_call_id": "1", "cancelled": False},
        }
    ]


async def test_ui_messages_reach_the_app() -> None:
    got: list[tuple[str, dict]] = []
    arrived = asyncio.Event()

    def on_ui(processor: RTVIProcessor, type_: str, data: dict) -> None:
        got.append((type_, data))
        arrived.set()

    async with RTVISession() as s:
        s.rtvi.add_event_handler("on_ui_message", on_ui)
        await s.ready()
        await s.request("ui-event", {"event": "clicked", "payload": {"button": "buy"}})
        await arrived.wait()
    assert got == [("ui-event", {"event": "clicked", "payload": {"button": "buy"}})]


async def test_raw_audio_takes_the_input_transports_path() -> None:
    rtvi = RTVIProcessor(client_ready_timeout_secs=None)
    async with RTVISession(rtvi, with_input=True) as s:
        await s.ready()
        audio = base64.b64encode(b"\x00\x10" * 800).decode()  # 100 ms at 8 kHz
        await s.request("raw-audio", {"base64Audio": audio, "sampleRate": 8000, "numChannels": 1})
        frame = await s.harness.down_recorder.wait_for(InputAudioRawFrame)
    assert frame.sample_rate == 16000  # converted to the pipeline's rate like captured audio
